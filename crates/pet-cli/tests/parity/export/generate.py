"""Parity fixture: adapters that `pet export --format peft` writes load in PEFT and reproduce
pet's logits.

For LoRA, P-Tuning v2 (deep prefix) and prompt tuning, this script:
  1. trains a SEQ_CLS delta with the `pet` command line on the tiny BERT of
     crates/pet-nlp/tests/parity/encoders/bert (job below, seeded) and keeps its checkpoint as
     <method>/delta.safetensors;
  2. exports it with `pet export --format peft` into <method>/adapter/;
  3. loads that folder with PEFT over transformers' BertForSequenceClassification and writes the
     logits of the rows of dev.jsonl to <method>/expected.safetensors (`logits`).

The Rust test (crates/pet-cli/tests/export.rs) exports the committed checkpoint again, checks it
writes the committed adapter, and compares pet's logits with PEFT's under a named tolerance.

Run through `cargo xtask fixtures`, which pins the reference stack.
"""

import json
import os
import shutil
import subprocess
import sys

import torch
import transformers
import peft
import safetensors
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertForSequenceClassification
from peft import PeftModel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../../../.."))
MODEL = os.path.join(ROOT, "crates/pet-nlp/tests/parity/encoders/bert")
METHODS = ["lora", "ptuning-v2", "prompt"]
ROWS = [
    ("the cat sat on the mat", "cat"),
    ("a big dog is running", "dog"),
    ("the dog sat", "dog"),
    ("a cat is on the mat", "cat"),
]


def pet(*args):
    command = ["cargo", "run", "-q", "-p", "pet-cli", "--", *args]
    subprocess.run(command, cwd=ROOT, check=True)


def metadata():
    return {
        "generator": "crates/pet-cli/tests/parity/export/generate.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
    }


def main():
    dev = os.path.join(HERE, "dev.jsonl")
    with open(dev, "w") as f:
        for text, label in ROWS:
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    batch = tokenizer([t for t, _ in ROWS], padding=True, truncation=True, max_length=16, return_tensors="pt")
    for method in METHODS:
        folder = os.path.join(HERE, method)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        run = os.path.join(folder, "run")
        job = os.path.join(folder, "job.toml")
        with open(job, "w") as f:
            f.write(
                f'model = "{MODEL}"\ntask = "classification"\ntrain = "{dev}"\ndev = "{dev}"\n'
                f'method = "{method}"\nmax_length = 16\nbatch_size = 2\noutput = "{run}"\n'
                "[optim]\nepochs = 3\nlearning_rate = 0.05\nseed = 7\nprogress = false\n"
            )
        pet("train", "--config", job)
        shutil.copy(os.path.join(run, "delta.safetensors"), os.path.join(folder, "delta.safetensors"))
        shutil.rmtree(run)
        os.remove(job)
        adapter = os.path.join(folder, "adapter")
        pet("export", "--model", MODEL, "--delta", os.path.join(folder, "delta.safetensors"),
            "--format", "peft", "--output", adapter)
        base = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2).eval()
        model = PeftModel.from_pretrained(base, adapter).eval()
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"]).logits
        save_file({"logits": logits.contiguous()}, os.path.join(folder, "expected.safetensors"),
                  metadata=metadata())
        print(method, logits.tolist(), file=sys.stderr)


if __name__ == "__main__":
    main()
