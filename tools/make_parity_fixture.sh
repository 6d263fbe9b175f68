#!/usr/bin/env bash
# Regenerates tests/fixtures/resnet50_parity.safetensors: our deterministic weights and images
# (examples/parity_inputs.rs) run through torchvision's resnet50 (tools/torch_parity.py).
# Needs the Python environment of tools/README.md (PYTHON defaults to .venv-tools/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv-tools/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --release --quiet --example parity_inputs -- "$tmp"
"$PY" tools/torch_parity.py --weights "$tmp/weights.safetensors" --inputs "$tmp/inputs.safetensors" \
    --out "$tmp/torch_out.safetensors"
# Keep the fixture small: features and logits (f32 and f64), not the stem activations.
"$PY" - "$tmp/torch_out.safetensors" tests/fixtures/resnet50_parity.safetensors <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
src, dst = sys.argv[1], sys.argv[2]
with safe_open(src, "pt") as f:
    meta = f.metadata() or {}
    keep = {k: f.get_tensor(k) for k in ("features", "logits", "features_f64", "logits_f64")}
save_file(keep, dst, metadata=meta)
print("wrote", dst)
PY
