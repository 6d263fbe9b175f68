#!/usr/bin/env bash
# Seed scale on the device machine (issue 11's goal: the seed notebook's 16 epochs over the
# 10,015 HAM10000 images in under 5 minutes on one H100/H200, FP32, decode included). Run from
# the repository root with .gpu-carry carried (tools/gpu_build.sh builds it here):
#
#   device tool: command `bash tools/gpu_seed_scale.sh`, carry [".gpu-carry"], timeout_s 600
#
# Writes a synthetic HAM10000-layout set of N images (default 10015, 600x450 JPEGs, as the real
# set), then times `train --preset seed` (whole ResNet50, flattened 7x7x2048 map, batch 32) for
# EPOCHS epochs (default 16) on --device cuda, and prints one JSON line: images, epochs, seconds
# for synth and for training (training includes decoding, augmentation views, validation after
# every epoch and the model and checkpoint writes). Knobs: N, EPOCHS, OUT (default /tmp/seed-out),
# GPU_CHECK_CARRY (default .gpu-carry). Small values (N=64 EPOCHS=1) check the script on a CPU
# machine with DEVICE=cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10015}
EPOCHS=${EPOCHS:-16}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/seed-out}
BIN=${GPU_CHECK_CARRY:-.gpu-carry}/skinengine
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s.%N)
"$BIN" synth --out "$work/data" --n "$N" >"$OUT/synth.log" 2>&1
t1=$(date +%s.%N)
"$BIN" train --data "$work/data" --out "$work/run" --preset seed --epochs "$EPOCHS" \
    --device "$DEVICE" 2>&1 | tee "$OUT/train.log" | grep -E '^(epoch|best|fine-tuning|error)' || true
t2=$(date +%s.%N)
test -s "$work/run/model.safetensors"
cp "$work/run/metrics.json" "$OUT/" 2>/dev/null || true
python3 - "$N" "$EPOCHS" "$t0" "$t1" "$t2" <<'PY' | tee "$OUT/seed_scale.json"
import json, sys
n, epochs, t0, t1, t2 = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:6])
train = t2 - t1
print(json.dumps({"images": n, "epochs": epochs, "synth_s": round(t1 - t0, 1),
                  "train_s": round(train, 1),
                  "goal": "train_s < 300 for 10015 images x 16 epochs"}))
PY
