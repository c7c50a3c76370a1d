"""Real-weight parity fixture: all-MiniLM-L6-v2 (the `all-minilm-l6-v2` asset of `datasets/`)
run by transformers on two sentences, one a pair.

Reads the fetched asset from `$PET_HOME/all-minilm-l6-v2/0.1.0` (run `pet fetch
all-minilm-l6-v2` first) and writes expected.safetensors next to this script: the tokenized
inputs (`input_ids`, `attention_mask`, `token_type_ids`), `last_hidden_state` and
`pooler_output`. The weights are not committed; the test loads them from the cache.
"""

import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ASSET = os.path.join(os.environ.get("PET_HOME", os.path.expanduser("~/.cache/pet")), "all-minilm-l6-v2", "0.1.0")


def main():
    if not os.path.isfile(os.path.join(ASSET, "model.safetensors")):
        raise SystemExit(f"{ASSET} not found: run `cargo run -p pet-cli -- fetch all-minilm-l6-v2` first")
    tokenizer = BertTokenizerFast.from_pretrained(ASSET)
    model = BertModel.from_pretrained(ASSET).eval()
    single = tokenizer("Parameter-efficient tuning trains tiny deltas.", return_tensors="pt")
    pair = tokenizer("Is this email spam?", "Win a FREE cruise now!!!", return_tensors="pt")
    # Pad the pair row to the batch length so both rows share one tensor.
    length = max(single["input_ids"].shape[1], pair["input_ids"].shape[1])

    def pad(t, value):
        return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)

    inputs = {
        key: torch.cat([pad(single[key], 0), pad(pair[key], 0)], dim=0)
        for key in ["input_ids", "attention_mask", "token_type_ids"]
    }
    with torch.no_grad():
        out = model(**inputs)
    save_file(
        {
            **inputs,
            "attention_mask": inputs["attention_mask"].float(),
            "last_hidden_state": out.last_hidden_state.contiguous(),
            "pooler_output": out.pooler_output.contiguous(),
        },
        os.path.join(HERE, "expected.safetensors"),
        metadata={
            "generator": "crates/pet-cli/tests/parity/minilm/generate.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "asset": "all-minilm-l6-v2 0.1.0",
        },
    )


if __name__ == "__main__":
    main()
