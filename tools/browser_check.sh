#!/usr/bin/env bash
# The web page of `skinengine serve` in a real browser, loopback only: headless Chromium (from
# Debian's packages) driven by playwright-core (npm, no browser download of its own) loads the
# page, uploads a synthetic lesion image, waits for the answer (bars and heat map) and saves a
# screenshot. Also checks that the page fetched nothing but the server itself.
#
#   tools/browser_check.sh [SCREENSHOT.png]      (default docs/serve_page.png)
#
# The model is the demo's fine-tuned ResNet18 (96x96, synthetic data; made once under
# target/browser-check/). Needs root for apt-get when Chromium is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/serve_page.png}
work=target/browser-check
mkdir -p "$work"

if ! command -v chromium >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
if [ ! -f "$work/node_modules/playwright-core/package.json" ]; then
  (cd "$work" && npm install --no-save --no-audit --no-fund --silent playwright-core@1)
fi

cargo build --quiet --locked
bin=target/debug/skinengine
model=$work/demo/run/model.safetensors
if [ ! -s "$model" ]; then
  rm -rf "$work/demo"
  "$bin" demo --out "$work/demo" --n 60 --fine-tune layer4 --backbone resnet18 --image-size 96 \
    --epochs 2 --device cpu >"$work/demo.log" 2>&1
fi
image=$(find "$work/demo/data" -name '*.jpg' | sort | head -n 1)

"$bin" serve --model "$model" --host 127.0.0.1 --port 0 --device cpu >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q 'listening on' "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/^serve: listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/serve.out")
[ -n "$url" ] || { echo "server did not start:"; cat "$work/serve.err"; exit 1; }
for _ in $(seq 600); do
  curl -sf "$url/healthz" >/dev/null && break
  sleep 0.1
done

PLAYWRIGHT_CORE="$PWD/$work/node_modules/playwright-core" \
  node tools/browser_check.cjs "$url" "$image" "$out"
echo "screenshot: $out"
