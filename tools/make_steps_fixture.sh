#!/usr/bin/env bash
# Regenerates tests/fixtures/steps_resnet18.safetensors: five AdamW steps on one batch through a
# whole ResNet18 in training mode (tools/torch_steps.py, float64) from the weights and images
# of model::parity::grads (examples/grads_inputs.rs). The fixture keeps the loss of each step
# and, for every tensor of the final state dict, SAMPLES values at the indices
# model::parity::grads::sample_indices gives.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv-tools/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --release --quiet --example grads_inputs -- resnet18 "$tmp"
"$PY" tools/torch_steps.py --arch resnet18 --weights "$tmp/weights.safetensors" \
    --inputs "$tmp/inputs.safetensors" --out "$tmp/steps.safetensors" \
    --steps 5 --lr 1e-3 --lr-backbone 1e-4 --wd 0.01
"$PY" - "$tmp/steps.safetensors" tests/fixtures/steps_resnet18.safetensors <<'PY'
import sys
import torch
from safetensors import safe_open
from safetensors.torch import save_file
src, dst = sys.argv[1], sys.argv[2]
SAMPLES = 48  # model::parity::grads::SAMPLES
def idx(n):
    s = min(SAMPLES, n)
    return [0] * s if s <= 1 else [i * (n - 1) // (s - 1) for i in range(s)]
out = {}
with safe_open(src, "pt") as f:
    meta = f.metadata() or {}
    for k in f.keys():
        t = f.get_tensor(k).reshape(-1)
        out[k if k == "loss" else f"sample/{k}"] = t if k == "loss" else t[torch.tensor(idx(t.numel()))].contiguous()
save_file(out, dst, metadata=meta)
print("wrote", dst, len(out), "tensors")
PY
