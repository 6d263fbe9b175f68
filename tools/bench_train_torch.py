#!/usr/bin/env python3
"""PyTorch anchor for `skinengine bench --train`: images/s of a full training step (forward in
train mode, cross-entropy over 1000 classes, backward, AdamW) on random weights and inputs at
224x224, eager mode, on the CPU (or --device cuda, TF32 off), median of --iters steps after one
warm-up step. Both memory formats are timed on the CPU; the best is the anchor.

Usage:
    python tools/bench_train_torch.py [--arch resnet50] [--batch 32] [--iters 3] [--threads 2] [--device cpu|cuda]
Prints one JSON object per memory format.
"""
import argparse
import json
import time

import torch
import torchvision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(args.device)
    for fmt in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        model = getattr(torchvision.models, args.arch)(weights=None).to(dev).train()
        model = model.to(memory_format=fmt)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
        x = (torch.rand(args.batch, 3, 224, 224, device=dev) * 4 - 2).contiguous(memory_format=fmt)
        y = torch.randint(0, 1000, (args.batch,), device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        step()
        times = []
        for _ in range(args.iters):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        times.sort()
        med = times[len(times) // 2]
        print(json.dumps({"torch": torch.__version__, "arch": args.arch, "device": args.device,
                          "format": "channels_last" if fmt == torch.channels_last else "contiguous",
                          "batch": args.batch, "threads": args.threads, "median_ms": med * 1e3,
                          "images_per_s": args.batch / med}))


if __name__ == "__main__":
    main()
