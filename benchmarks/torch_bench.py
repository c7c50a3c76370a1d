#!/usr/bin/env python3
"""The PyTorch + PEFT reference of `pet bench`: same flags, same JSON line with "impl": "torch".

A sequence-classification model (transformers' BertForSequenceClassification from a model
folder; a bare BertModel folder gets a new 2-class head) with PEFT prefix tuning (P-Tuning v2),
PEFT LoRA with pet's preset (r 8, alpha 16, query and value), or full fine-tuning; synthetic
seeded token ids of shape [batch, seq], all attended. `train` times forward + backward + an AdamW
step on the trainable parameters, `infer` the forward under `torch.inference_mode()`.
`--mode gemm` instead times an n x n fp32 matrix product (the machine's matmul peak for the FLOP
utilization of `cargo xtask bench`).

Pinned stack: `fixtures-requirements.txt` (torch, transformers 4.57.6, peft 0.17.1). Run with
PYTHONHASHSEED=0.
"""

import argparse
import json
import resource
import time

import torch


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(args, device, step):
    for _ in range(args.warmup):
        step()
    sync(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    return time.perf_counter() - started


def gemm(args, device):
    n = args.gemm_size
    g = torch.Generator().manual_seed(args.seed)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    seconds = timed(args, device, lambda: torch.matmul(a, b))
    return {"gflops": 2.0 * n**3 * args.steps / seconds / 1e9, "n": n}


def task_model(args):
    from peft import LoraConfig, PrefixTuningConfig, get_peft_model
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(args.model, num_labels=2)
    prefix = 0
    if args.method == "ptuning-v2":
        config = PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=args.prefix)
        model = get_peft_model(model, config)
        prefix = args.prefix
    elif args.method == "lora":
        config = LoraConfig(
            task_type="SEQ_CLS",
            r=8,
            lora_alpha=16,
            lora_dropout=0.0,
            target_modules=["query", "value"],
        )
        model = get_peft_model(model, config)
    return model, prefix


def throughput(args, device):
    model, prefix = task_model(args)
    model.to(device)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (args.batch, args.seq), generator=g).to(device)
    mask = torch.ones(args.batch, args.seq, dtype=torch.long, device=device)
    labels = (torch.arange(args.batch) % 2).to(device)
    if args.mode == "train":
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-3)

        def step():
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = timed(args, device, step)
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask).logits.cpu()

        seconds = timed(args, device, step)
    return {
        "method": args.method,
        "batch": args.batch,
        "seq": args.seq,
        "prefix": prefix,
        "samples_per_sec": args.batch * args.steps / max(seconds, 1e-12),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder (config.json, model.safetensors)")
    p.add_argument("--mode", choices=["train", "infer", "gemm"], default="train")
    p.add_argument("--method", choices=["ptuning-v2", "lora", "full"], default="ptuning-v2")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--prefix", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--gemm-size", type=int, default=2048)
    args = p.parse_args()
    if args.mode != "gemm" and not args.model:
        p.error("--model is required for train and infer")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    record = gemm(args, device) if args.mode == "gemm" else throughput(args, device)
    line = {"impl": "torch", "mode": args.mode, **record}
    line.update(
        peak_rss_mib=peak_rss_mib(), device=args.device, threads=torch.get_num_threads()
    )
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
