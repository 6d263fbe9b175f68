#!/usr/bin/env bash
# Seed-scale benchmark on the CPU (issue 13): the seed's data size and configuration end to end.
#
#   tools/seed_scale.sh                 # 10,015 images, as HAM10000
#   N=2000 tools/seed_scale.sh          # a smaller set (memory must not grow with N beyond
#                                       # the cached features: compare peak RSS at two sizes)
#
# Phases, each timed and its peak RSS read by /usr/bin/time -v:
#   synth    N synthetic 600x450 JPEGs in the HAM10000 layout (seed 0)
#   inspect  the data folder checked whole and decoded at full size
#   honest   train the head on frozen random-init ResNet50 features with the seed's last
#            configuration (batch-norm head 120-84-7, --mirror, --oversample, frequency-weighted
#            loss with the seed's reduction, batch 32, as `ablate`'s last row) under the honest
#            protocol (split by lesion before augmentation); this run does the feature pass
#   seed     the same configuration under the seed's protocol (random split of the augmented
#            views), from the feature cache the honest run filled (head training only)
# The feature pass's rate (views/s) is the one train prints ("features: ... views/s").
# The GPU counterpart, tools/gpu_seed_scale.sh, times the seed notebook's fine-tuning run
# (--preset seed) on the device; the data (synth, same N and seed) is the same.
#
# Knobs: N (10015), EPOCHS (30), THREADS (0 = every core), BIN (target/release/skinengine,
# built by `cargo build --release`), WORK (a fresh folder under /tmp; removed unless KEEP=1),
# OUT (/tmp/seed-scale-$N: logs and seed_scale.json), SCALED_DECODE=1 (train with --scaled-decode).
# Prints one JSON line (also OUT/seed_scale.json).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10015}
EPOCHS=${EPOCHS:-30}
THREADS=${THREADS:-0}
BIN=${BIN:-target/release/skinengine}
OUT=${OUT:-/tmp/seed-scale-$N}
test -x "$BIN" || { echo "no $BIN: cargo build --release first" >&2; exit 1; }
mkdir -p "$OUT"
WORK=${WORK:-$(mktemp -d /tmp/seed-scale-work.XXXXXX)}
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; fi
decode=()
if [ "${SCALED_DECODE:-0}" = 1 ]; then decode=(--scaled-decode); fi

# phase NAME CMD...: runs CMD under /usr/bin/time -v, its output in OUT/NAME.log.
phase() {
    local name=$1
    shift
    echo "== $name: $*" >&2
    /usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.log" 2>&1 || {
        echo "$name failed; last lines of $OUT/$name.log:" >&2
        tail -20 "$OUT/$name.log" >&2
        exit 1
    }
}

seed_config=(--batchnorm --mirror --oversample --class-weights frequency --loss-reduction seed
    --batch-size 32 --epochs "$EPOCHS" --threads "$THREADS" --device cpu --cache "$WORK/cache")
phase synth "$BIN" synth --out "$WORK/data" --n "$N" --layout ham10000 --seed 0 --size 600x450 \
    --threads "$THREADS"
phase inspect "$BIN" inspect --data "$WORK/data"
phase honest "$BIN" train --data "$WORK/data" --out "$WORK/honest" --protocol honest \
    "${seed_config[@]}" "${decode[@]}"
phase seed "$BIN" train --data "$WORK/data" --out "$WORK/seed" --protocol seed \
    "${seed_config[@]}" "${decode[@]}"
test -s "$WORK/honest/model.safetensors" && test -s "$WORK/seed/model.safetensors"
du -sb "$WORK/data" "$WORK/cache" >"$OUT/sizes.txt"
cp "$WORK/honest/metrics.json" "$OUT/honest_metrics.json"
cp "$WORK/seed/metrics.json" "$OUT/seed_metrics.json"

python3 - "$OUT" "$N" "$EPOCHS" "${SCALED_DECODE:-0}" <<'PY' | tee "$OUT/seed_scale.json"
import json, re, sys
out, n, epochs, scaled = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"

def timing(name):
    t = open(f"{out}/{name}.time").read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    s = 0.0
    for part in wall.split(":"):
        s = s * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    return {"wall_s": round(s, 1), "peak_rss_mib": round(rss / 1024, 1)}

phases = {p: timing(p) for p in ["synth", "inspect", "honest", "seed"]}
log = open(f"{out}/honest.log").read()
m = re.findall(r"features: (\d+) views in ([\d.]+) s \(([\d.]+) views/s", log)
feat = {"views": sum(int(v) for v, _, _ in m), "seconds": round(sum(float(s) for _, s, _ in m), 1)}
feat["views_per_s"] = round(feat["views"] / feat["seconds"], 2) if feat["seconds"] else None
best = {}
for p in ["honest", "seed"]:
    # train's last line: "best epoch N (val bmca X); model ...".
    b = re.findall(r"best epoch \d+ \(val bmca ([\d.]+)\)", open(f"{out}/{p}.log").read())
    best[p] = float(b[-1]) if b else None
sizes = dict((l.split()[1].rsplit("/", 1)[-1], int(l.split()[0]))
             for l in open(f"{out}/sizes.txt"))
print(json.dumps({
    "images": n, "epochs": epochs, "decode": "scaled" if scaled else "full",
    "phases": phases, "feature_pass": feat,
    "total_s": round(sum(p["wall_s"] for p in phases.values()), 1),
    "peak_rss_mib": max(p["peak_rss_mib"] for p in phases.values()),
    "data_bytes": sizes.get("data"), "cache_bytes": sizes.get("cache"),
    "best_val_bmca": best,
    "goal": "total_s < 900 and peak_rss_mib < 2048 for 10015 images on 2 cores"}))
PY
