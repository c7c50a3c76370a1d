"""Does PEFT's reparameterized prefix (PrefixTuningConfig with prefix_projection) collapse to the
majority class on SpamAssassin as pet's does on some seeds? The reference side of the study's
`prefix` finding (docs/results/README.md): the same protocol as `pet train --method prefix`
(all-MiniLM-L6-v2, a seeded subset of 800 training emails, the first 400 dev rows, 64 tokens,
batch 16, AdamW with linear warmup over 10% of the steps and linear decay, gradient norm clipped
at 1.0, 16 virtual tokens, MLP hidden size 512), run for several seeds.

For each seed it prints one JSON line: the dev accuracy after every epoch, whether every epoch
stayed at the majority class, and at initialization how much the pooled output still depends on
the input (`input_spread`: the standard deviation over dev rows of the pooler output, averaged
over features, with the prefix; `input_spread_without_prefix`: the same for the bare encoder).

    python benchmarks/peft_prefix_seeds.py --model ~/.cache/pet/all-minilm-l6-v2/0.1.0 \
        --data ~/.cache/pet/spamassassin/0.2.3 --seeds 42 43 44 45 46 --lr 1e-3 --epochs 3

Needs the pinned stack of fixtures-requirements.txt (torch, transformers, peft).
"""

import argparse
import json
import random
from pathlib import Path

import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def read_rows(path, limit=None):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def batches(rows, labels, tokenizer, size, max_length):
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        encoded = tokenizer(
            [r["text"] for r in chunk],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        encoded["labels"] = torch.tensor([labels.index(r["label"]) for r in chunk])
        yield encoded


def input_spread(backbone_call, encoded):
    """Std over rows of the pooler output, averaged over features."""
    with torch.no_grad():
        pooled = backbone_call(encoded)
    return pooled.std(dim=0).mean().item()


def accuracy(model, dev_batches):
    model.eval()
    right = total = 0
    with torch.no_grad():
        for encoded in dev_batches:
            logits = model(**encoded).logits
            right += (logits.argmax(-1) == encoded["labels"]).sum().item()
            total += len(encoded["labels"])
    model.train()
    return right / total


def run(args, seed):
    random.seed(seed)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train = read_rows(Path(args.data) / "train.jsonl")
    dev = read_rows(Path(args.data) / "dev.jsonl", args.eval_rows)
    labels = sorted({r["label"] for r in train})
    train = random.Random(seed).sample(train, args.train_rows)
    base = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))
    probe = next(batches(dev[:64], labels, tokenizer, 64, args.max_length))
    inputs = {k: v for k, v in probe.items() if k != "labels"}
    spread_bare = input_spread(lambda e: base.bert(**inputs).pooler_output, probe)
    config = PrefixTuningConfig(
        task_type=TaskType.SEQ_CLS,
        num_virtual_tokens=16,
        prefix_projection=True,
        encoder_hidden_size=512,
    )
    model = get_peft_model(base, config)

    def pooled_with_prefix(_):
        # PEFT's SEQ_CLS forward with past_key_values, stopping at the pooler.
        batch = inputs["input_ids"].shape[0]
        past = model.get_prompt(batch_size=batch)
        mask = torch.cat([torch.ones(batch, 16), inputs["attention_mask"]], dim=1)
        return model.base_model.bert(
            input_ids=inputs["input_ids"],
            attention_mask=mask,
            token_type_ids=inputs.get("token_type_ids"),
            past_key_values=past,
        ).pooler_output

    spread_prefix = input_spread(pooled_with_prefix, probe)
    steps = args.epochs * ((len(train) + args.batch - 1) // args.batch)
    warmup = int(0.1 * steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: step / max(1, warmup) if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup)),
    )
    dev_batches = list(batches(dev, labels, tokenizer, 64, args.max_length))
    majority = max(sum(r["label"] == label for r in dev) for label in labels) / len(dev)
    per_epoch = []
    model.train()
    for epoch in range(args.epochs):
        order = random.Random(seed * 1000 + epoch).sample(train, len(train))
        for encoded in batches(order, labels, tokenizer, args.batch, args.max_length):
            loss = model(**encoded).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        per_epoch.append(round(accuracy(model, dev_batches), 4))
    return {
        "seed": seed,
        "lr": args.lr,
        "dev_accuracy_per_epoch": per_epoch,
        "majority": round(majority, 4),
        "stayed_at_majority": all(abs(a - majority) < 1e-9 for a in per_epoch),
        "input_spread": round(spread_prefix, 5),
        "input_spread_without_prefix": round(spread_bare, 5),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=800)
    parser.add_argument("--eval-rows", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        print(json.dumps(run(args, seed)), flush=True)


if __name__ == "__main__":
    main()
