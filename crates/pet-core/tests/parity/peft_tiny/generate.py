"""Parity fixture: PEFT adapters on a tiny random BertModel, mapped onto pet's tiny encoder.

Writes, next to this script:
  model/                    the BertModel as `save_pretrained` writes it (config.json,
                            model.safetensors), loaded in Rust through the production loader.
  inputs.safetensors        the inputs (`input_ids`, `attention_mask`), a fixed `probe` for the
                            loss, and the backbone's `last_hidden_state` and `pooler_output`.
  <case>/adapter_config.json, <case>/adapter_model.safetensors
                            the adapter as PEFT saves it.
  <case>/expected.safetensors
                            `last_hidden_state` of the PEFT model and the gradients of
                            loss = sum(last_hidden_state * probe) with respect to every trainable
                            PEFT parameter (`grad.NAME`) and their values (`param.NAME`), keyed
                            by PEFT's parameter name without the adapter name. Cases that adapt
                            the pooler (`lora_dense`) also hold `pooler_output`, and their loss
                            adds sum(pooler_output * probe[:, 0]).

Run through `cargo xtask fixtures`, which pins the reference stack.
"""

import json
import os
import sys

import torch
import transformers
import peft
import safetensors
from safetensors.torch import save_file
from transformers import BertConfig, BertModel
from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261129

# Sizes of pet-core's `TinyEncoderConfig::tiny()`.
CONFIG = BertConfig(
    vocab_size=32,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=64,
    type_vocab_size=1,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12,
    hidden_act="gelu",
)


def metadata():
    return {
        "generator": "crates/pet-core/tests/parity/peft_tiny/generate.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "seed": str(SEED),
    }


def save(tensors, path):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=metadata())


def run_case(name, peft_config, inputs, probe, base_state, with_pooler=False):
    torch.manual_seed(SEED + sum(map(ord, name)))
    model = BertModel(CONFIG).eval()
    model.load_state_dict(base_state)
    peft_model = get_peft_model(model, peft_config).eval()
    out = peft_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    hidden = out.last_hidden_state
    loss = (hidden * probe[:, : hidden.shape[1]]).sum()
    extra = {}
    if with_pooler:
        loss = loss + (out.pooler_output * probe[:, 0]).sum()
        extra["pooler_output"] = out.pooler_output
    loss.backward()
    grads = {}
    for pname, param in peft_model.named_parameters():
        if param.requires_grad:
            key = pname.replace(".default", "")
            grads["grad." + key] = param.grad
            grads["param." + key] = param
    folder = os.path.join(HERE, name)
    peft_model.save_pretrained(folder)
    # save_pretrained writes a README we do not need.
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    save({"last_hidden_state": hidden, **extra, **grads}, os.path.join(folder, "expected.safetensors"))


def main():
    torch.manual_seed(SEED)
    base = BertModel(CONFIG).eval()
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    input_ids = torch.tensor([[2, 7, 11, 5, 9, 3], [2, 4, 8, 3, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    # Long enough for the prompt-tuning output (virtual tokens + seq).
    probe = torch.randn(2, 16, CONFIG.hidden_size)
    out = base(**inputs)
    base.save_pretrained(os.path.join(HERE, "model"))
    save(
        {
            "input_ids": input_ids,
            "attention_mask": attention_mask.float(),
            "probe": probe,
            "last_hidden_state": out.last_hidden_state,
            "pooler_output": out.pooler_output,
        },
        os.path.join(HERE, "inputs.safetensors"),
    )
    common = dict(task_type="FEATURE_EXTRACTION")
    run_case(
        "lora",
        LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["query", "value", "intermediate.dense"],
            init_lora_weights=False,
            **common,
        ),
        inputs, probe, base_state,
    )
    # PEFT matches `dense` against every module path ending in it, BertModel's `pooler.dense`
    # included.
    run_case(
        "lora_dense",
        LoraConfig(
            r=2,
            lora_alpha=4,
            lora_dropout=0.0,
            target_modules=["query", "value", "dense"],
            init_lora_weights=False,
            **common,
        ),
        inputs, probe, base_state, with_pooler=True,
    )
    run_case(
        "prefix",
        PrefixTuningConfig(num_virtual_tokens=3, **common),
        inputs, probe, base_state,
    )
    run_case(
        "prefix_projection",
        PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=8, **common),
        inputs, probe, base_state,
    )
    run_case(
        "prompt",
        PromptTuningConfig(num_virtual_tokens=4, **common),
        inputs, probe, base_state,
    )
    print("wrote fixtures to", HERE, file=sys.stderr)


if __name__ == "__main__":
    main()
