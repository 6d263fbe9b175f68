#!/usr/bin/env python3
"""Compares `skinengine grads` output with tools/torch_grads.py output, tensor by tensor.

Usage:
    python tools/compare_grads.py OURS.safetensors TORCH.safetensors [--top 10]

Prints the loss of both and, for the tensors with the largest errors, the max |ours - torch|
in units of the torch gradient's RMS and the relative error of the norm. Exit status 1 if a
parameter is missing on either side.
"""
import argparse
import sys

from safetensors.torch import load_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ours")
    ap.add_argument("torch")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    a, b = load_file(args.ours), load_file(args.torch)
    skip = {"loss", "images", "labels"}
    names_a, names_b = set(a) - skip, set(b) - skip
    if names_a != names_b:
        print("only in ours:", sorted(names_a - names_b)[:10], "only in torch:", sorted(names_b - names_a)[:10])
        sys.exit(1)
    print(f"loss: ours {a['loss'].item():.8f}, torch {b['loss'].double().item():.8f}")
    rows = []
    for k in sorted(names_a):
        g, h = a[k].double().reshape(-1), b[k].double().reshape(-1)
        rms = (h.norm() / h.numel() ** 0.5).item() or 1e-300
        rows.append(((g - h).abs().max().item() / rms, abs(g.norm().item() - h.norm().item()) / (h.norm().item() or 1e-300), k))
    rows.sort(reverse=True)
    print(f"{len(rows)} gradients; largest errors (max |diff| / rms, norm rel err):")
    for e, n, k in rows[: args.top]:
        print(f"  {k:40s} {e:.2e}  {n:.2e}")


if __name__ == "__main__":
    main()
