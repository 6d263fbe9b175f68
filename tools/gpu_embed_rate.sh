#!/usr/bin/env bash
# Does decoding keep up with the device? (issue 13: "on the GPU machine, `embed` within 80% of
# the forward-only rate".) Run from the repository root with .gpu-carry carried (the device
# machine has no cargo; tools/gpu_build.sh builds it here), alone or as a step of
# tools/gpu_check.sh:
#
#   device tool: command `bash tools/gpu_embed_rate.sh`, carry [".gpu-carry"], timeout_s 300
#
# Writes N synthetic 600x450 JPEGs (the HAM10000 size) and the random-init ResNet50 weights
# (`synth --weights-out`), then times `embed` (decode + resize + normalise on every core, ahead
# of the device, and the ResNet50 forward) over N0 and over all N images, with full and with
# DCT-scaled decoding, and `bench` (the forward alone) at the same batch and precision. Each
# embed run also loads the weights and builds the model, a fixed cost; the rate of the
# N - N0 images between the two runs leaves it out, and that rate is what is compared with the
# forward: ratio = marginal embed rate / forward rate (goal >= 0.8). Prints one JSON line per
# decoder and writes them to $OUT/embed_rate.jsonl.
#
# Knobs: N (default 4096), N0 (default 512), BATCH (32), PRECISION (fp32), DEVICE (cuda; cpu
# checks the script anywhere, with small N), OUT (default /tmp/gpu-out), GPU_CHECK_CARRY
# (default .gpu-carry; BIN overrides the binary, e.g. target/release/skinengine).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4096}
N0=${N0:-512}
BATCH=${BATCH:-32}
PRECISION=${PRECISION:-fp32}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/gpu-out}
BIN=${BIN:-${GPU_CHECK_CARRY:-.gpu-carry}/skinengine}
((N0 > 0 && N0 < N)) || { echo "gpu_embed_rate: need 0 < N0 < N (N=$N, N0=$N0)" >&2; exit 2; }
mkdir -p "$OUT"
work=$(mktemp -d /tmp/embed_rate.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$BIN" synth --out "$work/data" --n "$N" --weights-out "$work/w.safetensors" >&2
# Every image in one folder, and the first N0 of them (hard links) in another.
mkdir "$work/all" "$work/few"
find "$work/data" -name '*.jpg' | LC_ALL=C sort >"$work/list"
xargs -a "$work/list" ln -t "$work/all"
head -n "$N0" "$work/list" | xargs ln -t "$work/few"

# Seconds `embed` takes over folder $1 (extra arguments passed on).
embed_s() {
  local dir=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" embed --weights "$work/w.safetensors" --images "$dir" --out "$work/f.safetensors" \
    --device "$DEVICE" --precision "$PRECISION" --batch "$BATCH" "$@" >&2
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

"$BIN" bench --device "$DEVICE" --precision "$PRECISION" --batch "$BATCH" --iters 20 --json \
  >"$work/bench.json"
forward=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    l = l.strip()
    if l.startswith("{"):
        print(json.loads(l)["images_per_s"])' "$work/bench.json")

for decode in full scaled; do
  flag=()
  [[ $decode == scaled ]] && flag=(--scaled-decode)
  few=$(embed_s "$work/few" "${flag[@]}")
  all=$(embed_s "$work/all" "${flag[@]}")
  python3 - "$decode" "$N" "$N0" "$few" "$all" "$forward" "$DEVICE" "$PRECISION" "$BATCH" <<'PY' |
import json, os, sys
decode, n, n0, few, all_, fwd, device, precision, batch = sys.argv[1:10]
n, n0, few, all_, fwd = int(n), int(n0), float(few), float(all_), float(fwd)
marginal = (n - n0) / (all_ - few) if all_ > few else None
print(json.dumps({
    "decode": decode, "device": device, "precision": precision, "batch": int(batch),
    "images": n, "images_few": n0, "embed_s": all_, "embed_few_s": few,
    "embed_images_per_s": round(n / all_, 1),
    "marginal_images_per_s": None if marginal is None else round(marginal, 1),
    "forward_images_per_s": round(fwd, 1),
    "ratio": None if marginal is None else round(marginal / fwd, 3),
    "cores": os.cpu_count(), "goal": "ratio >= 0.8",
}))
PY
    tee -a "$OUT/embed_rate.jsonl"
done
