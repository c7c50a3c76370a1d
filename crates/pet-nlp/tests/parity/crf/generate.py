"""Parity fixture: the linear-chain CRF of pytorch-crf (`torchcrf.CRF`, as P-Tuning v2 uses it
for NER) with 5 tags, on a batch of 3 sequences of 6 steps whose masks keep 6, 4 and 1 steps.

Writes expected.safetensors next to this script:
  start_transitions [5], end_transitions [5], transitions [5, 5]
                           the CRF's parameters (torchcrf's uniform(-0.1, 0.1) init, seeded)
  emissions [3, 6, 5]      random scores, batch first
  tags [3, 6] (int64)      random gold tags, also under the mask's padding
  mask [3, 6] (float32)    1.0 on kept steps, 0.0 on padding
  log_likelihood [3]       `crf(emissions, tags, mask, reduction="none")`
  grad.emissions, grad.start_transitions, grad.end_transitions, grad.transitions
                           gradients of `log_likelihood.sum()`
  viterbi [3, 6] (int64)   `crf.decode(emissions, mask)`, each path padded with -1

Run through `cargo xtask fixtures`, which pins the reference stack.
"""

import os

import safetensors
import torch
import torchcrf
from safetensors.torch import save_file
from torchcrf import CRF

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261130
NUM_TAGS = 5
BATCH, SEQ = 3, 6
LENGTHS = [6, 4, 1]


def metadata():
    return {
        "generator": "crates/pet-nlp/tests/parity/crf/generate.py",
        "torch": torch.__version__,
        "pytorch-crf": torchcrf.__version__,
        "safetensors": safetensors.__version__,
        "seed": str(SEED),
    }


def main():
    torch.manual_seed(SEED)
    crf = CRF(NUM_TAGS, batch_first=True)
    emissions = torch.randn(BATCH, SEQ, NUM_TAGS, requires_grad=True)
    tags = torch.randint(0, NUM_TAGS, (BATCH, SEQ))
    mask = torch.tensor([[i < n for i in range(SEQ)] for n in LENGTHS])

    log_likelihood = crf(emissions, tags, mask, reduction="none")
    log_likelihood.sum().backward()
    with torch.no_grad():
        paths = crf.decode(emissions, mask)
    viterbi = torch.full((BATCH, SEQ), -1, dtype=torch.int64)
    for row, path in enumerate(paths):
        assert len(path) == LENGTHS[row]
        viterbi[row, : len(path)] = torch.tensor(path)

    tensors = {
        "start_transitions": crf.start_transitions,
        "end_transitions": crf.end_transitions,
        "transitions": crf.transitions,
        "emissions": emissions,
        "tags": tags,
        "mask": mask.float(),
        "log_likelihood": log_likelihood,
        "grad.emissions": emissions.grad,
        "grad.start_transitions": crf.start_transitions.grad,
        "grad.end_transitions": crf.end_transitions.grad,
        "grad.transitions": crf.transitions.grad,
        "viterbi": viterbi,
    }
    save_file(
        {k: v.detach().contiguous() for k, v in tensors.items()},
        os.path.join(HERE, "expected.safetensors"),
        metadata=metadata(),
    )


if __name__ == "__main__":
    main()
