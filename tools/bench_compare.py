#!/usr/bin/env python3
"""Same-run ResNet50 CPU comparison: skinengine vs PyTorch (NCHW, channels_last) vs ONNX Runtime,
same machine, same batch sizes, same thread count, run back to back and repeated (--rounds) so
that drift on a shared machine shows up instead of hiding in one lucky number.

Usage:
    python tools/bench_compare.py [--bin target/release/skinengine] [--batch 1,8,32]
                                  [--threads 2] [--iters 5] [--rounds 2]
Prints a markdown table (best of rounds per engine and batch) and ratios to skinengine.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/skinengine")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    best = {}  # (engine, batch) -> images/s

    def keep(engine, batch, ips):
        k = (engine, batch)
        best[k] = max(best.get(k, 0.0), ips)

    batches = [int(b) for b in a.batch.split(",")]
    for r in range(a.rounds):
        for b in batches:
            for row in run_lines([a.bin, "bench", "--device", "cpu", "--batch", str(b),
                                  "--iters", str(a.iters), "--threads", str(a.threads), "--json"]):
                keep("skinengine", b, row["images_per_s"])
            for row in run_lines([sys.executable, os.path.join(HERE, "bench_cpu_anchors.py"),
                                  "--batch", str(b), "--threads", str(a.threads),
                                  "--iters", str(a.iters), "--json"]):
                keep(row["engine"], b, row["images_per_s"])
            print(f"round {r + 1} batch {b} done", file=sys.stderr)
    engines = ["skinengine", "torch_nchw", "torch_channels_last", "onnxruntime"]
    print(f"ResNet50 forward 224x224, {a.threads} threads, images/s (best of {a.rounds} rounds, "
          f"median of {a.iters} iterations each); ratio = skinengine / engine")
    print()
    print("| batch | " + " | ".join(engines) + " | vs torch NCHW | vs torch channels_last | vs ONNX Runtime |")
    print("|---" * (len(engines) + 4) + "|")
    for b in batches:
        v = [best.get((e, b), float("nan")) for e in engines]
        ratios = [v[0] / x for x in v[1:]]
        print(f"| {b} | " + " | ".join(f"{x:.1f}" for x in v) + " | "
              + " | ".join(f"{x:.2f}" for x in ratios) + " |")


if __name__ == "__main__":
    main()
