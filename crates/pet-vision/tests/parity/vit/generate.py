"""Parity fixture: tiny random ViT checkpoints, their outputs and every gradient.

Writes, next to this script, one folder per case, each as `save_pretrained` writes it
(config.json, model.safetensors) with expected.safetensors:

  vit/              `ViTModel` with its pooler: 3 channels, 8 x 8 images in 4 x 4 patches,
                    `qkv_bias` on, `layer_norm_eps` 1e-12. expected.safetensors holds the inputs
                    (`pixel_values` [2, 3, 8, 8]), a fixed `probe`, `last_hidden_state`,
                    `pooler_output` and `grad.<key>`, the gradient of
                    loss = sum(last_hidden_state * probe) + sum(pooler_output) for every
                    parameter, by state-dict key.
  vit_no_qkv_bias/  the same without `qkv_bias`, `layer_norm_eps` 1e-6, a GELU of another
                    name (`gelu_new`).
  vit_gray/         one channel, 9 x 9 images in 3 x 3 patches (an odd patch size), no pooler
                    (`add_pooling_layer=False`: no `pooler_output`; loss without it).
  vit_cls/          `ViTForImageClassification`, 3 labels, over vit/'s encoder shape: `logits`
                    and `grad.<key>` of loss = sum(logits * probe).
  vpt_shallow/,     Visual Prompt Tuning on vit/'s model (its weights, not saved again), as the
  vpt_deep/         VPT paper's code runs it, written here over transformers' modules: 3 prompt
                    tokens after [CLS], before the patches, without position embeddings; deep:
                    before every later layer, that layer's prompts replace the slots.
                    expected.safetensors: `prompts` [layers or 1, 3, 16], `pixel_values`,
                    `probe`, `last_hidden_state` [2, 1 + 3 + 4, 16], `pooler_output`,
                    `grad.prompts` and `grad.<key>` of the backbone's parameters for
                    loss = sum(last_hidden_state * probe) + sum(pooler_output) (the Rust test
                    compares the prompts').

Layer norms and biases are drawn at random, not left at 1 and 0, so that a swapped or missing
one shows. Dropout is off. Run through `cargo xtask fixtures`, which pins the reference stack.
"""

import os

import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import ViTConfig, ViTForImageClassification, ViTModel

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261203

SIZES = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=24,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.2,
)


def metadata():
    return {
        "generator": "crates/pet-vision/tests/parity/vit/generate.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "seed": str(SEED),
    }


def save(tensors, path):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=metadata())


def randomize_norms_and_biases(model):
    """Every LayerNorm weight and bias and every linear bias away from its 1 / 0 start."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))


def build(cls, config, **kwargs):
    torch.manual_seed(SEED + sum(map(ord, cls.__name__ + str(config.num_channels))))
    model = cls(config, **kwargs).eval()
    randomize_norms_and_biases(model)
    return model


def pixels(config, rows=2):
    torch.manual_seed(SEED + 7 * config.num_channels + config.image_size)
    return torch.randn(rows, config.num_channels, config.image_size, config.image_size)


def write(name, model, tensors):
    folder = os.path.join(HERE, name)
    model.save_pretrained(folder)
    grads = {"grad." + k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    save({**tensors, **grads}, os.path.join(folder, "expected.safetensors"))


def backbone_case(name, config, pooler=True):
    model = build(ViTModel, config, add_pooling_layer=pooler)
    pixel_values = pixels(config)
    out = model(pixel_values=pixel_values)
    torch.manual_seed(SEED + 1)
    probe = torch.randn_like(out.last_hidden_state)
    loss = (out.last_hidden_state * probe).sum()
    tensors = {"pixel_values": pixel_values, "probe": probe, "last_hidden_state": out.last_hidden_state}
    if pooler:
        loss = loss + out.pooler_output.sum()
        tensors["pooler_output"] = out.pooler_output
    loss.backward()
    write(name, model, tensors)


def classifier_case(name, config):
    model = build(ViTForImageClassification, config)
    pixel_values = pixels(config)
    logits = model(pixel_values=pixel_values).logits
    torch.manual_seed(SEED + 2)
    probe = torch.randn_like(logits)
    (logits * probe).sum().backward()
    write(name, model, {"pixel_values": pixel_values, "probe": probe, "logits": logits})


def vpt_case(name, deep, tokens=3):
    config = ViTConfig(**dict(SIZES, image_size=8, patch_size=4, num_channels=3), qkv_bias=True, layer_norm_eps=1e-12)
    model = ViTModel.from_pretrained(os.path.join(HERE, "vit")).eval()
    pixel_values = pixels(config)
    torch.manual_seed(SEED + 3 + deep)
    layers = config.num_hidden_layers if deep else 1
    prompts = (0.5 * torch.randn(layers, tokens, config.hidden_size)).requires_grad_()
    batch = pixel_values.shape[0]
    x = model.embeddings(pixel_values)
    x = torch.cat([x[:, :1], prompts[0].expand(batch, -1, -1), x[:, 1:]], dim=1)
    for index, layer in enumerate(model.encoder.layer):
        if deep and index > 0:
            x = torch.cat([x[:, :1], prompts[index].expand(batch, -1, -1), x[:, 1 + tokens :]], dim=1)
        x = layer(x)
    x = model.layernorm(x)
    pooled = model.pooler(x)
    torch.manual_seed(SEED + 4)
    probe = torch.randn_like(x)
    ((x * probe).sum() + pooled.sum()).backward()
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    grads = {"grad." + k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    tensors = {
        "prompts": prompts,
        "pixel_values": pixel_values,
        "probe": probe,
        "last_hidden_state": x,
        "pooler_output": pooled,
        "grad.prompts": prompts.grad,
        **grads,
    }
    save(tensors, os.path.join(folder, "expected.safetensors"))


def main():
    base = dict(SIZES, image_size=8, patch_size=4, num_channels=3)
    backbone_case("vit", ViTConfig(**base, qkv_bias=True, layer_norm_eps=1e-12))
    backbone_case(
        "vit_no_qkv_bias",
        ViTConfig(**base, qkv_bias=False, layer_norm_eps=1e-6, hidden_act="gelu_new"),
    )
    gray = dict(SIZES, image_size=9, patch_size=3, num_channels=1)
    backbone_case("vit_gray", ViTConfig(**gray, layer_norm_eps=1e-5), pooler=False)
    labels = dict(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    classifier_case("vit_cls", ViTConfig(**base, **labels))
    vpt_case("vpt_shallow", deep=False)
    vpt_case("vpt_deep", deep=True)


if __name__ == "__main__":
    main()
