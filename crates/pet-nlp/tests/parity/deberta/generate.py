"""Parity fixture: tiny random DeBERTa-v2 / v3 checkpoints (`DebertaV2Model`), their outputs and
gradients, task heads, and PEFT adapters on the v3 model.

Writes, next to this script, one folder per case:
  v2/, v3/                 `DebertaV2Model` as `save_pretrained` writes it (config.json,
                           model.safetensors) and expected.safetensors: the inputs
                           (`input_ids`, `attention_mask` as floats, `token_type_ids` for v2), a
                           fixed `probe`, `last_hidden_state`, and `grad.<key>`, the gradient of
                           loss = sum(last_hidden_state * probe) for every parameter, by
                           state-dict key. The second input row is padded.
                           v2: DeBERTa-v2 style: absolute positions added to the input
                           (`position_biased_input`), token types, relative attention with
                           `pos_att_type` c2p|p2c, separate `pos_key_proj` / `pos_query_proj`,
                           `max_relative_positions` 4 (smaller than the sequence, so relative
                           positions clamp), no buckets, the convolution layer after layer 0
                           (kernel 3, gelu), no norm of the relative embeddings.
                           v3: DeBERTa-v3 style: no absolute positions, no token types,
                           log-bucketed relative positions (`position_buckets` 4,
                           `max_relative_positions` -1, i.e. max_position_embeddings),
                           `share_att_key`, `norm_rel_ebd` layer_norm, no convolution.
  v3_seq_cls/              `DebertaV2ForSequenceClassification` (3 labels) with the v3/ encoder
                           (keys `deberta.*`, `pooler.dense.*`, `classifier.*`);
                           expected.safetensors holds its `logits` on v3/'s inputs.
  v3_token_cls/            `DebertaV2ForTokenClassification` (5 labels) with the v3/ encoder;
                           expected.safetensors holds its per-token `logits`.
  v3_lora/, v3_prompt/     PEFT adapters on the v3/ model (`adapter_config.json`,
                           `adapter_model.safetensors`): LORA (r 2 on query_proj, key_proj,
                           value_proj, random B) and PROMPT_TUNING (2 virtual tokens), both
                           FEATURE_EXTRACTION; expected.safetensors holds PEFT's
                           `last_hidden_state` on v3/'s inputs (with the prompt positions first
                           for PROMPT_TUNING). With `share_att_key`, LoRA on query_proj / key_proj
                           also changes the projections of the relative embeddings, as PEFT
                           replaces the modules themselves.
  v3_prefix/, v2_prefix/   a PEFT PREFIX_TUNING adapter (3 virtual tokens, no projection) on the
                           v3/ (v2/) model, and expected.safetensors with `last_hidden_state` under the
                           P-Tuning v2 reference semantics for DeBERTa-v2 (THUDM/P-tuning-v2,
                           `model/debertaV2.py`), since transformers' DeBERTa takes no
                           `past_key_values`: every layer's prefix keys / values (PEFT's
                           `get_prompt` layout) are concatenated before the token keys / values,
                           take content scores only (the c2p / p2c bias is computed over the
                           token keys and zeros are concatenated in front of it), and every real
                           query sees them; absolute positions (v2) start at the prefix length,
                           as P-Tuning v2's embeddings take the past length. Built by patching
                           transformers' `DisentangledSelfAttention.forward` (`prefix_forward`
                           below), reusing its own `disentangled_attention_bias`.
                           `before_first_token.last_hidden_state`: the same prefix under pet's
                           alternative policy (prefix key j of n at position j - n, relative
                           terms like any key at that distance), computed in torch with
                           transformers' `make_log_bucket_position` and clamping.

  v3_peft_seq_cls/         a PEFT SEQ_CLS LORA adapter (r 2 on query_proj, value_proj) over
                           v3_seq_cls/ loaded with `from_pretrained`; PEFT saves `classifier`
                           (`modules_to_save`, perturbed here so that it differs from the task
                           folder's) but not the ContextPooler, which stays the folder's;
                           expected.safetensors holds PEFT's `logits` on v3/'s inputs.
  v3/tokenizer.json        a SentencePiece-style Unigram tokenizer configured like DeBERTa-v3's
                           (`[PAD]` 0, `[CLS]` 1, `[SEP]` 2, `[UNK]` 3, `[MASK]` 4, the quote
                           normalizers, WhitespaceSplit + Metaspace `always`, TemplateProcessing
                           `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B:1 [SEP]:1`) over 39 pieces
                           (at most the model's 40) that `tokenizers`' UnigramTrainer learnt on a
                           small corpus, written out in TOKENIZER_PIECES; v3/tokenizer_expected.json: `DebertaV2TokenizerFast`'s ids,
                           types, offsets and word ids of texts, pairs (truncated) and words.

Run with the pinned reference stack (torch, transformers 4.57.6, peft 0.17.1):
  PYTHONHASHSEED=0 target/fixtures-venv/bin/python crates/pet-nlp/tests/parity/deberta/generate.py
(`... generate.py tokenizer` writes only the tokenizer files.)
"""

import json
import os

import torch
import transformers
import peft
import safetensors
from safetensors.torch import save_file
from transformers import (
    DebertaV2Config,
    DebertaV2Model,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)
from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position, scaled_size_sqrt

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261130

SIZES = dict(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=24,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    max_position_embeddings=32,
    pad_token_id=0,
)

V2 = dict(
    **SIZES,
    type_vocab_size=2,
    relative_attention=True,
    pos_att_type=["p2c", "c2p"],
    max_relative_positions=4,
    position_buckets=-1,
    share_att_key=False,
    norm_rel_ebd="none",
    position_biased_input=True,
    conv_kernel_size=3,
    conv_act="gelu",
    conv_groups=1,
)

V3 = dict(
    **SIZES,
    type_vocab_size=0,
    relative_attention=True,
    pos_att_type="p2c|c2p",
    max_relative_positions=-1,
    position_buckets=4,
    share_att_key=True,
    norm_rel_ebd="layer_norm",
    position_biased_input=False,
)


def metadata():
    return {
        "generator": "crates/pet-nlp/tests/parity/deberta/generate.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "seed": str(SEED),
    }


def save(tensors, path):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=metadata())


def randomize(model):
    """Non-trivial layer norms and biases, so that their gradients and roles are all visible."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))


def backbone_case(name, model, inputs):
    torch.manual_seed(SEED + 1)
    probe = torch.randn(*inputs["input_ids"].shape, model.config.hidden_size)
    out = model(**inputs)
    loss = (out.last_hidden_state * probe).sum()
    loss.backward()
    grads = {"grad." + k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    folder = os.path.join(HERE, name)
    model.save_pretrained(folder)
    save(
        {
            **{k: (v.float() if k == "attention_mask" else v) for k, v in inputs.items()},
            "probe": probe,
            "last_hidden_state": out.last_hidden_state,
            **grads,
        },
        os.path.join(folder, "expected.safetensors"),
    )


def peft_case(name, base_state, config, peft_config, inputs):
    torch.manual_seed(SEED + sum(map(ord, name)))
    model = DebertaV2Model(config).eval()
    model.load_state_dict(base_state)
    peft_model = get_peft_model(model, peft_config).eval()
    with torch.no_grad():
        hidden = peft_model(**inputs).last_hidden_state
    folder = os.path.join(HERE, name)
    peft_model.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    save({"last_hidden_state": hidden}, os.path.join(folder, "expected.safetensors"))


def before_first_token_bias(self, q, k_all, rel_embeddings, scale_factor, n):
    """c2p + p2c over every key, prefix key j of n at position j - n (pet's
    `PrefixRelativePosition::BeforeFirstToken`), with transformers' bucketing and clamping."""
    seq, keys = q.shape[1], k_all.shape[1]
    rel = torch.arange(seq)[:, None] - torch.arange(-n, seq)[None, :]
    if self.position_buckets > 0:
        rel = make_log_bucket_position(rel, self.position_buckets, self.max_relative_positions).long()
    span = self.pos_ebd_size
    index = torch.clamp(rel + span, 0, 2 * span - 1)
    rel_embeddings = rel_embeddings[0 : span * 2, :].unsqueeze(0)
    repeat = q.shape[0] // self.num_attention_heads
    if self.share_att_key:
        pos_query = self.transpose_for_scores(self.query_proj(rel_embeddings), self.num_attention_heads).repeat(repeat, 1, 1)
        pos_key = self.transpose_for_scores(self.key_proj(rel_embeddings), self.num_attention_heads).repeat(repeat, 1, 1)
    else:
        pos_query = self.transpose_for_scores(self.pos_query_proj(rel_embeddings), self.num_attention_heads).repeat(repeat, 1, 1)
        pos_key = self.transpose_for_scores(self.pos_key_proj(rel_embeddings), self.num_attention_heads).repeat(repeat, 1, 1)
    scale = scaled_size_sqrt(q, scale_factor)
    c2p = torch.gather(torch.bmm(q, pos_key.transpose(-1, -2)), -1, index.expand([q.shape[0], seq, keys]))
    p2c = torch.gather(torch.bmm(k_all, pos_query.transpose(-1, -2)), -1, index.T.expand([q.shape[0], keys, seq]))
    return c2p / scale + p2c.transpose(-1, -2) / scale


def prefix_forward(attention, prefix_key, prefix_value, mask, before_first_token=False):
    """`DisentangledSelfAttention.forward` with a key/value prefix, as P-Tuning v2's DeBERTa-v2:
    prefix keys get content scores and a zero relative bias; `mask` [batch, seq] is the real
    queries' and keys' mask, prefix keys are always visible. With `before_first_token`, prefix
    keys take relative terms at positions -n..-1 instead (`before_first_token_bias`)."""

    def forward(hidden_states, attention_mask, output_attentions=False, query_states=None, relative_pos=None, rel_embeddings=None):
        self = attention
        heads = self.num_attention_heads
        batch, seq, _ = hidden_states.shape
        n = prefix_key.shape[2]
        q = self.transpose_for_scores(self.query_proj(hidden_states), heads)
        k = self.transpose_for_scores(self.key_proj(hidden_states), heads)
        v = self.transpose_for_scores(self.value_proj(hidden_states), heads)
        k_all = torch.cat([prefix_key.reshape(batch * heads, n, -1), k], 1)
        v_all = torch.cat([prefix_value.reshape(batch * heads, n, -1), v], 1)
        scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
        scale = scaled_size_sqrt(q, scale_factor)
        scores = torch.bmm(q, k_all.transpose(-1, -2) / scale.to(dtype=q.dtype))
        if before_first_token:
            scores = scores + before_first_token_bias(self, q, k_all, self.pos_dropout(rel_embeddings), scale_factor, n)
        else:
            rel = self.disentangled_attention_bias(q, k, relative_pos, self.pos_dropout(rel_embeddings), scale_factor)
            scores = scores + torch.cat([torch.zeros(batch * heads, seq, n), rel], -1)
        scores = scores.view(batch, heads, seq, n + seq)
        keys = torch.cat([torch.ones(batch, n), mask.float()], 1)
        keep = (mask.float()[:, None, :, None] * keys[:, None, None, :]).bool()
        scores = scores.masked_fill(~keep, torch.finfo(q.dtype).min)
        probs = torch.softmax(scores, -1)
        context = torch.bmm(probs.view(batch * heads, seq, n + seq), v_all)
        context = context.view(batch, heads, seq, -1).permute(0, 2, 1, 3).reshape(batch, seq, -1)
        return (context, None)

    return forward


def prefix_case(name, base_state, config, inputs):
    """PEFT's prefix-tuning adapter file on the v3 model, run with P-Tuning v2's semantics."""
    torch.manual_seed(SEED + sum(map(ord, name)))
    model = DebertaV2Model(config).eval()
    model.load_state_dict(base_state)
    peft_config = PrefixTuningConfig(num_virtual_tokens=3, task_type="FEATURE_EXTRACTION")
    peft_model = get_peft_model(model, peft_config).eval()
    folder = os.path.join(HERE, name)
    peft_model.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    table = peft_model.prompt_encoder["default"].embedding.weight.detach()
    batch = inputs["input_ids"].shape[0]
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    # PEFT's get_prompt: [n, L * 2 * d] -> L x [2, batch, heads, n, head_dim]
    past = table.repeat(batch, 1, 1).view(batch, peft_config.num_virtual_tokens, layers * 2, heads, -1)
    past = past.permute([2, 0, 3, 1, 4]).split(2)
    # Absolute positions offset by the prefix length, as P-Tuning v2 numbers them (v2 only; v3
    # has none).
    seq = inputs["input_ids"].shape[1]
    n = peft_config.num_virtual_tokens
    positions = torch.arange(n, n + seq)[None, :]
    outputs = {}
    for key, before in [("last_hidden_state", False), ("before_first_token.last_hidden_state", True)]:
        for layer, kv in zip(model.encoder.layer, past):
            layer.attention.self.forward = prefix_forward(layer.attention.self, kv[0], kv[1], inputs["attention_mask"], before)
        with torch.no_grad():
            outputs[key] = model(**inputs, position_ids=positions).last_hidden_state
    save(outputs, os.path.join(folder, "expected.safetensors"))


# The Unigram pieces and log-probabilities of the v3 tokenizer: what `tokenizers`'
# UnigramTrainer learnt (vocab_size 40, specials first) on "the cat sat on the mat", "a dog is
# running in the park", "this mail is spam", "win a free prize now", "meet me at noon", "the red
# cat and the blue dog", "new york is big", "we go to paris", rounded. Written out because the
# trainer's result varies from run to run (hash-map order), and a fixture must not.
TOKENIZER_PIECES = [
    ("▁", -1.669), ("e", -2.431), ("i", -2.824), ("o", -2.901), ("a", -2.908), ("t", -2.911),
    ("s", -2.911), ("n", -2.983), ("▁th", -3.066), ("g", -3.249), ("w", -3.474), ("d", -3.474),
    ("in", -3.926), ("r", -3.955), ("c", -4.173), ("l", -4.173), ("k", -4.173), ("u", -4.173),
    ("▁ma", -4.178), ("▁par", -4.18), ("▁me", -4.182), ("▁b", -4.188), ("▁no", -4.209), ("re", -4.325),
    ("m", -4.851), ("y", -4.879), ("z", -4.879), ("f", -4.879), ("pa", -4.879), ("▁p", -4.928),
    ("ri", -5.092), ("p", -8.09), ("b", -9.502), ("h", -9.502),
]


def tokenizer_case(folder, vocab_size):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import DebertaV2TokenizerFast

    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    vocab = [(t, 0.0) for t in specials] + TOKENIZER_PIECES
    assert len(vocab) <= vocab_size, len(vocab)
    tok = Tokenizer(models.Unigram(vocab, unk_id=specials.index("[UNK]"), byte_fallback=False))
    tok.add_special_tokens(specials)
    tok.normalizer = normalizers.Sequence([normalizers.Replace("``", '"'), normalizers.Replace("''", '"')])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    path = os.path.join(folder, "tokenizer.json")
    tok.save(path)
    fast = DebertaV2TokenizerFast(tokenizer_file=path, bos_token="[CLS]", eos_token="[SEP]",
                                  unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                  cls_token="[CLS]", mask_token="[MASK]")

    def record(enc):
        return {
            "input_ids": enc["input_ids"],
            "token_type_ids": enc["token_type_ids"],
            "attention_mask": enc["attention_mask"],
            "offsets": [list(o) for o in enc["offset_mapping"]],
            "word_ids": [(-1 if w is None else w) for w in enc.word_ids()],
        }

    cases = []
    for text in ["the cat sat on the mat", "Win a FREE prize, now!", "  the  quick fox  ``jumps''"]:
        cases.append({"text": text, **record(fast(text, return_offsets_mapping=True))})
    for text, pair in [("the red cat", "a dog is running in the park"), ("meet me at noon", "spam")]:
        enc = fast(text, pair, truncation="longest_first", max_length=16, return_offsets_mapping=True)
        cases.append({"text": text, "text_pair": pair, "max_length": 16, **record(enc)})
    words = ["New", "York", "is", "big", "!"]
    enc = fast(words, is_split_into_words=True, return_offsets_mapping=True)
    cases.append({"words": words, **record(enc)})
    with open(os.path.join(folder, "tokenizer_expected.json"), "w") as f:
        json.dump(cases, f, indent=1)


def peft_seq_cls_case():
    torch.manual_seed(SEED + 20)
    task = DebertaV2ForSequenceClassification.from_pretrained(os.path.join(HERE, "v3_seq_cls")).eval()
    lora = LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["query_proj", "value_proj"], init_lora_weights=False)
    peft_model = get_peft_model(task, lora).eval()
    with torch.no_grad():
        for p in peft_model.base_model.model.classifier.modules_to_save["default"].parameters():
            p.add_(0.5 * torch.randn_like(p))
    folder = os.path.join(HERE, "v3_peft_seq_cls")
    peft_model.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))
    config_path = os.path.join(folder, "adapter_config.json")
    with open(config_path) as f:
        adapter_config = json.load(f)
    adapter_config["base_model_name_or_path"] = "v3_seq_cls"  # not this machine's path
    with open(config_path, "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
    inputs = {
        "input_ids": torch.tensor([[1, 7, 11, 5, 9, 5, 6, 2], [1, 4, 8, 2, 0, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]]),
    }
    with torch.no_grad():
        logits = peft_model(**inputs).logits
    save({"logits": logits}, os.path.join(folder, "expected.safetensors"))


def main():
    torch.manual_seed(SEED)
    v2_config = DebertaV2Config(**V2)
    v2 = DebertaV2Model(v2_config).eval()
    randomize(v2)
    v2_state = {k: v.clone() for k, v in v2.state_dict().items()}
    v2_inputs = {
        "input_ids": torch.tensor([[1, 7, 11, 2, 9, 5, 6, 2], [1, 4, 8, 2, 6, 2, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]]),
        "token_type_ids": torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0, 0]]),
    }
    backbone_case("v2", v2, v2_inputs)

    torch.manual_seed(SEED + 2)
    v3_config = DebertaV2Config(**V3)
    v3 = DebertaV2Model(v3_config).eval()
    randomize(v3)
    v3_inputs = {
        "input_ids": torch.tensor([[1, 7, 11, 5, 9, 5, 6, 2], [1, 4, 8, 2, 0, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]]),
    }
    base_state = {k: v.clone() for k, v in v3.state_dict().items()}
    backbone_case("v3", v3, v3_inputs)

    for name, cls, labels in [
        ("v3_seq_cls", DebertaV2ForSequenceClassification, 3),
        ("v3_token_cls", DebertaV2ForTokenClassification, 5),
    ]:
        torch.manual_seed(SEED + 10 + labels)
        task = cls(DebertaV2Config(**V3, num_labels=labels)).eval()
        task.deberta.load_state_dict(base_state)
        randomize(task)  # also moves the heads' biases; the encoder is restored below
        task.deberta.load_state_dict(base_state)
        task.save_pretrained(os.path.join(HERE, name))
        with torch.no_grad():
            logits = task(**v3_inputs).logits
        save({"logits": logits}, os.path.join(HERE, name, "expected.safetensors"))

    common = dict(task_type="FEATURE_EXTRACTION")
    peft_case(
        "v3_lora",
        base_state,
        v3_config,
        LoraConfig(r=2, lora_alpha=4, target_modules=["query_proj", "key_proj", "value_proj"], init_lora_weights=False, **common),
        v3_inputs,
    )
    peft_case("v3_prompt", base_state, v3_config, PromptTuningConfig(num_virtual_tokens=2, **common), v3_inputs)
    prefix_case("v3_prefix", base_state, v3_config, v3_inputs)
    prefix_case("v2_prefix", v2_state, v2_config, v2_inputs)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == []:
        main()
    tokenizer_case(os.path.join(HERE, "v3"), V3["vocab_size"])
    if sys.argv[1:] in ([], ["peft_seq_cls"]):
        peft_seq_cls_case()
