#!/usr/bin/env bash
# A bounded load test of `skinengine serve` on loopback: starts the server on the demo's model
# (a head on ResNet50 features at 224x224, random-init backbone, synthetic data: the compute of a
# real model; made once under target/load-test/), then runs examples/load_test.rs against it for
# a fixed time with a few client counts, and prints throughput, p50/p99 latency, errors and the
# server's RSS before/after.
#
#   tools/load_test.sh [SECONDS per run, default 20] [extra serve flags...]
# (release build: these are performance numbers)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
work=target/load-test
mkdir -p "$work"
cargo build --quiet --locked --release --example load_test
cargo build --quiet --locked --release
bin=target/release/skinengine
model=$work/demo/run/model.safetensors
if [ ! -s "$model" ]; then
  rm -rf "$work/demo"
  "$bin" demo --out "$work/demo" --n 60 --epochs 2 --device cpu >"$work/demo.log" 2>&1
fi
image=$(find "$work/demo/data" -name '*.jpg' | sort | head -n 1)

"$bin" serve --model "$model" --port 0 --device cpu --queue 64 --max-batch 8 "$@" \
  >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q 'listening on' "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^serve: listening on http:\/\/\(.*\)$/\1/p' "$work/serve.out")
for _ in $(seq 1200); do
  curl -sf "http://$addr/healthz" >/dev/null && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F); load: $(uptime | sed 's/.*load average: //')"
echo "image: $image ($(stat -c %s "$image") bytes)"
for clients in 1 4 16; do
  echo "== $clients clients"
  target/release/examples/load_test --addr "$addr" --image "$image" --clients "$clients" \
    --seconds "$secs" --pid "$pid"
done
echo "== 4 clients, with heat maps"
target/release/examples/load_test --addr "$addr" --image "$image" --clients 4 --seconds "$secs" \
  --pid "$pid" --heatmap
curl -s "http://$addr/metrics" | grep -E '^skinengine_(batch_size_(sum|count)|images_total|queue_depth)'
