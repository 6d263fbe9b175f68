#!/usr/bin/env bash
# Regenerates tests/fixtures/grads_<arch>.safetensors: our deterministic weights and images
# (examples/grads_inputs.rs) through PyTorch autograd in float64 (tools/torch_grads.py), in both
# BN modes, and in float32 for scale. The fixture keeps, per mode, the loss and for every
# parameter its gradient's exact norm, SAMPLES values at the indices
# model::parity::grads::sample_indices gives, and the largest error of PyTorch's own f32 run.
# Needs the Python environment of tools/README.md (PYTHON defaults to .venv-tools/bin/python).
#
# Usage: tools/make_grads_fixture.sh [ARCH...]   (default: resnet50 resnet18; vgg19 is made with
# `tools/make_grads_fixture.sh vgg19`: 2 images of 224x224, about 4 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv-tools/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(resnet50 resnet18)
for arch in "${archs[@]}"; do
    cargo run --release --quiet --example grads_inputs -- "$arch" "$tmp"
    for bn in train eval; do
        for dt in f64 f32; do
            "$PY" tools/torch_grads.py --arch "$arch" --weights "$tmp/weights.safetensors" \
                --inputs "$tmp/inputs.safetensors" --out "$tmp/$bn-$dt.safetensors" --bn "$bn" --dtype $dt
        done
    done
    "$PY" - "$tmp" "tests/fixtures/grads_$arch.safetensors" <<'PY'
import sys
import torch
from safetensors import safe_open
from safetensors.torch import save_file
tmp, dst = sys.argv[1], sys.argv[2]
SAMPLES = 48  # model::parity::grads::SAMPLES
def idx(n):
    s = min(SAMPLES, n)
    return [0] * s if s <= 1 else [i * (n - 1) // (s - 1) for i in range(s)]
out, meta = {}, {}
for bn in ("train", "eval"):
    with safe_open(f"{tmp}/{bn}-f64.safetensors", "pt") as f, safe_open(f"{tmp}/{bn}-f32.safetensors", "pt") as f32:
        meta = f.metadata() or {}
        for k in f.keys():
            g = f.get_tensor(k).reshape(-1)
            h = f32.get_tensor(k).reshape(-1).double()
            if k == "loss":
                out[f"{bn}/loss"] = g
                out[f"{bn}/loss_f32"] = h
                continue
            out[f"{bn}/norm/{k}"] = g.norm().reshape(1)
            i = torch.tensor(idx(g.numel()))
            out[f"{bn}/sample/{k}"] = g[i].contiguous()
            # How far PyTorch's own float32 run is from float64, over the whole tensor: the
            # scale of the f32 error this gradient is prone to (the test's yardstick).
            out[f"{bn}/f32_err/{k}"] = (g - h).abs().max().reshape(1)
meta.pop("bn", None)
save_file(out, dst, metadata=meta)
print("wrote", dst, len(out), "tensors")
PY
done
