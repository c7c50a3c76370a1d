"""Parity fixture: tiny random BERT and RoBERTa checkpoints, their outputs and gradients, and
PEFT adapters on RoBERTa.

Writes, next to this script, one folder per case:
  bert/, roberta/          `BertModel` / `RobertaModel` as `save_pretrained` writes them
                           (config.json, model.safetensors) and expected.safetensors:
                           the inputs (`input_ids`, `attention_mask`, `token_type_ids`), a fixed
                           `probe`, `last_hidden_state`, `pooler_output`, and `grad.<key>`, the
                           gradient of loss = sum(last_hidden_state * probe) + sum(pooler_output)
                           for every parameter, by state-dict key.
  bert_task/               `BertForSequenceClassification` with the weights of bert/ (keys
                           `bert.*` and `classifier.*`), to load a task checkpoint's encoder
                           and head; expected.safetensors holds its `logits` on bert/'s inputs.
  bert_tagger/             `BertForTokenClassification` (5 labels) with the same encoder;
                           expected.safetensors holds its per-token `logits`.
  bert_qa/                 `BertForQuestionAnswering`; `logits` = start and end logits stacked
                           on the last axis. tokenizer_expected.json also holds the windows of a
                           question/context pair (only_second truncation, stride 4).
  bert/tokenizer.json      a WordPiece tokenizer over the model's 40-token vocabulary
                           (`BertTokenizerFast.save_pretrained`), and tokenizer_expected.json:
                           ids, token types, attention masks, offsets and word ids of single
                           texts, pairs (truncated longest-first to 10) and pre-tokenized words.
  bert_peft_<task>/        a PEFT adapter with a task head (`modules_to_save`) on the bert/ model:
                           SEQ_CLS with LORA, TOKEN_CLS with PREFIX_TUNING (projection MLP),
                           QUESTION_ANS with PROMPT_TUNING. inputs.jsonl holds the texts, words
                           or question/context pairs, tokenized by bert/tokenizer.json;
                           expected.safetensors the model's logits on them, virtual tokens
                           removed: `logits` [rows, classes] (SEQ_CLS), `logits` [words, tags]
                           at each word's first sub-word, rows concatenated (TOKEN_CLS),
                           `start_logits` / `end_logits` [rows, seq] (QUESTION_ANS; PEFT
                           0.17.1's QA prompt learning drops `token_type_ids`, a named argument
                           of its forward it never passes on, so these are all-zero-type logits).
  roberta_peft_seq_cls/     a PEFT SEQ_CLS LORA adapter over `RobertaForSequenceClassification`
                           with the roberta/ encoder: its saved head is RoBERTa's
                           `classifier.dense` + `classifier.out_proj`; expected.safetensors
                           holds the `logits` on roberta/'s inputs.
  roberta_<method>/        a PEFT adapter on the roberta/ model (`adapter_config.json`,
                           `adapter_model.safetensors`) and expected.safetensors with its
                           `last_hidden_state` on the same inputs, for LORA, PREFIX_TUNING and
                           PROMPT_TUNING (RoBERTa's position ids under prefixes and prompts).

Run through `cargo xtask fixtures`, which pins the reference stack.
"""

import os

import torch
import transformers
import peft
import safetensors
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering, RobertaConfig, RobertaModel, RobertaForSequenceClassification
from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261129

SIZES = dict(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=24,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def metadata():
    return {
        "generator": "crates/pet-nlp/tests/parity/encoders/generate.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "seed": str(SEED),
    }


def save(tensors, path):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=metadata())


def forward_and_grads(model, inputs, probe):
    out = model(**inputs)
    loss = (out.last_hidden_state * probe).sum() + out.pooler_output.sum()
    loss.backward()
    grads = {"grad." + name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return out, grads


def backbone_case(name, model, inputs):
    torch.manual_seed(SEED + 1)
    probe = torch.randn(*inputs["input_ids"].shape, model.config.hidden_size)
    out, grads = forward_and_grads(model, inputs, probe)
    folder = os.path.join(HERE, name)
    model.save_pretrained(folder)
    save(
        {
            **{k: (v.float() if k == "attention_mask" else v) for k, v in inputs.items()},
            "probe": probe,
            "last_hidden_state": out.last_hidden_state,
            "pooler_output": out.pooler_output,
            **grads,
        },
        os.path.join(folder, "expected.safetensors"),
    )


def peft_task_case(name, bert, cls, labels, peft_config, rows):
    """A PEFT adapter with a task head over the bert/ encoder, and its logits on `rows`."""
    import json
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(os.path.join(HERE, "bert"))
    torch.manual_seed(SEED + sum(map(ord, name)))
    task = cls(BertConfig(**SIZES, max_position_embeddings=32, type_vocab_size=2, num_labels=labels)).eval()
    task.bert.load_state_dict(bert.state_dict(), strict=False)
    model = get_peft_model(task, peft_config).eval()
    folder = os.path.join(HERE, name)
    model.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    with open(os.path.join(folder, "inputs.jsonl"), "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    virtual = getattr(peft_config, "num_virtual_tokens", 0) if peft_config.peft_type == "PROMPT_TUNING" else 0
    with torch.no_grad():
        if "tokens" in rows[0]:
            enc = tok([r["tokens"] for r in rows], is_split_into_words=True, padding=True, return_tensors="pt")
            logits = model(**enc).logits[:, virtual:]
            firsts = []
            for i in range(len(rows)):
                seen = set()
                for t, w in enumerate(enc.word_ids(i)):
                    if w is not None and w not in seen:
                        seen.add(w)
                        firsts.append(logits[i, t])
            expected = {"logits": torch.stack(firsts)}
        elif "question" in rows[0]:
            enc = tok([r["question"] for r in rows], [r["context"] for r in rows], padding=True, return_tensors="pt")
            out = model(**enc)
            expected = {"start_logits": out.start_logits[:, virtual:], "end_logits": out.end_logits[:, virtual:]}
        else:
            enc = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
            expected = {"logits": model(**enc).logits}
    save(expected, os.path.join(folder, "expected.safetensors"))


def peft_case(name, base_state, config, peft_config, inputs):
    torch.manual_seed(SEED + sum(map(ord, name)))
    model = RobertaModel(config).eval()
    model.load_state_dict(base_state)
    peft_model = get_peft_model(model, peft_config).eval()
    hidden = peft_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    folder = os.path.join(HERE, name)
    peft_model.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    save({"last_hidden_state": hidden}, os.path.join(folder, "expected.safetensors"))


VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "##s",
    "run", "##ning", ",", ".", "!", "a", "hello", "world", "big", "##ger", "is", "it", "no", "yes",
    "@", "user", "new", "york", "in", "paris", "##ian", "we", "go", "to", "and", "blue", "red", "?",
]


def tokenizer_case(folder):
    import json
    from transformers import BertTokenizerFast

    os.makedirs(folder, exist_ok=True)
    vocab_path = os.path.join(folder, "vocab.txt")
    with open(vocab_path, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    tok = BertTokenizerFast(vocab_file=vocab_path, do_lower_case=True)
    tok.save_pretrained(folder)
    for extra in ["tokenizer_config.json", "special_tokens_map.json"]:
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)

    def record(enc):
        return {
            "input_ids": enc["input_ids"],
            "token_type_ids": enc["token_type_ids"],
            "attention_mask": enc["attention_mask"],
            "offsets": [list(o) for o in enc["offset_mapping"]],
            "word_ids": [(-1 if w is None else w) for w in enc.word_ids()],
        }

    cases = []
    for text in ["The cat sat on the mat.", "Dogs running, bigger!", "Hello Parisian world?"]:
        cases.append({"text": text, **record(tok(text, return_offsets_mapping=True))})
    for text, pair in [("the cat", "a dog sat on the mat"), ("Hello world, it is a big blue dog", "yes it is")]:
        enc = tok(text, pair, truncation="longest_first", max_length=10, return_offsets_mapping=True)
        cases.append({"text": text, "text_pair": pair, "max_length": 10, **record(enc)})
    question, context = "where is the big dog?", "the cat sat on the mat. the big dog is in paris, and the red cat is in new york. we go to paris."
    enc = tok(question, context, truncation="only_second", max_length=16, stride=4,
              return_overflowing_tokens=True, return_offsets_mapping=True)
    for i in range(len(enc["input_ids"])):
        cases.append({
            "question": question, "context": context, "max_length": 16, "stride": 4, "window": i,
            "input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
            "attention_mask": enc["attention_mask"][i],
            "offsets": [list(o) for o in enc["offset_mapping"][i]],
            "word_ids": [(-1 if w is None else w) for w in enc.word_ids(i)],
            "sequence_ids": [(-1 if w is None else w) for w in enc.sequence_ids(i)],
        })
    words = ["@user", "New", "York", "dogs", "running", "!"]
    enc = tok(words, is_split_into_words=True, return_offsets_mapping=True)
    cases.append({"words": words, **record(enc)})
    with open(os.path.join(folder, "tokenizer_expected.json"), "w") as f:
        json.dump(cases, f, indent=1)


def main():
    torch.manual_seed(SEED)
    bert_config = BertConfig(**SIZES, max_position_embeddings=32, type_vocab_size=2)
    bert = BertModel(bert_config).eval()
    bert_inputs = {
        "input_ids": torch.tensor([[2, 7, 11, 3, 9, 5, 3], [2, 4, 8, 3, 6, 3, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0]]),
        "token_type_ids": torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0]]),
    }
    backbone_case("bert", bert, bert_inputs)
    tokenizer_case(os.path.join(HERE, "bert"))

    head_config = dict(**SIZES, max_position_embeddings=32, type_vocab_size=2)
    for name, cls, labels in [
        ("bert_task", BertForSequenceClassification, 3),
        ("bert_tagger", BertForTokenClassification, 5),
        ("bert_qa", BertForQuestionAnswering, 2),
    ]:
        torch.manual_seed(SEED + labels)
        task = cls(BertConfig(**head_config, num_labels=labels)).eval()
        task.bert.load_state_dict(bert.state_dict(), strict=False)
        task.save_pretrained(os.path.join(HERE, name))
        with torch.no_grad():
            out = task(**bert_inputs)
        logits = out.logits if hasattr(out, "logits") else torch.stack([out.start_logits, out.end_logits], -1)
        save({"logits": logits}, os.path.join(HERE, name, "expected.safetensors"))

    peft_task_case(
        "bert_peft_seq_cls",
        bert,
        BertForSequenceClassification,
        3,
        LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["query", "value"], init_lora_weights=False),
        [{"text": "the cat sat on the mat."}, {"text": "a big dog is running"}, {"text": "hello world, it is blue"}],
    )
    peft_task_case(
        "bert_peft_token_cls",
        bert,
        BertForTokenClassification,
        5,
        PrefixTuningConfig(task_type="TOKEN_CLS", num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=8),
        [{"tokens": ["@user", "New", "York", "dogs", "running", "!"]}, {"tokens": ["the", "cat", "sat"]}],
    )
    peft_task_case(
        "bert_peft_qa",
        bert,
        BertForQuestionAnswering,
        2,
        PromptTuningConfig(task_type="QUESTION_ANS", num_virtual_tokens=2),
        [
            {"question": "where is the dog?", "context": "the big dog is in paris."},
            {"question": "is it red?", "context": "no, it is blue"},
        ],
    )

    torch.manual_seed(SEED + 2)
    roberta_config = RobertaConfig(**SIZES, max_position_embeddings=40, type_vocab_size=1, pad_token_id=1)
    roberta = RobertaModel(roberta_config).eval()
    # Row 2 is padded with pad_token_id 1: its padding takes position padding_idx.
    roberta_inputs = {
        "input_ids": torch.tensor([[0, 7, 11, 5, 9, 2], [0, 4, 8, 2, 1, 1]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
    }
    base_state = {k: v.clone() for k, v in roberta.state_dict().items()}
    backbone_case("roberta", roberta, roberta_inputs)

    torch.manual_seed(SEED + 3)
    roberta_task = RobertaForSequenceClassification(RobertaConfig(**SIZES, max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, num_labels=3)).eval()
    roberta_task.roberta.load_state_dict(base_state, strict=False)
    lora = LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["query", "value"], init_lora_weights=False)
    peft_model = get_peft_model(roberta_task, lora).eval()
    folder = os.path.join(HERE, "roberta_peft_seq_cls")
    peft_model.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))
    with torch.no_grad():
        logits = peft_model(**roberta_inputs).logits
    save({"logits": logits}, os.path.join(folder, "expected.safetensors"))

    common = dict(task_type="FEATURE_EXTRACTION")
    peft_case(
        "roberta_lora",
        base_state,
        roberta_config,
        LoraConfig(r=2, lora_alpha=4, target_modules=["query", "key", "value", "output.dense"], init_lora_weights=False, **common),
        roberta_inputs,
    )
    peft_case("roberta_prefix", base_state, roberta_config, PrefixTuningConfig(num_virtual_tokens=3, **common), roberta_inputs)
    peft_case("roberta_prompt", base_state, roberta_config, PromptTuningConfig(num_virtual_tokens=2, **common), roberta_inputs)


if __name__ == "__main__":
    main()
