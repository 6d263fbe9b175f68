#!/usr/bin/env python3
"""PyTorch anchor for `skinengine bench --train`: images/s of a full training step (forward in
train mode, cross-entropy over 1000 classes, backward, AdamW) on random weights and inputs at
224x224, eager mode, on the CPU (or --device cuda, TF32 off), median of --iters steps after one
warm-up step. Both memory formats are timed on the CPU; the best is the anchor.

With --fine-tune layer4|layer3|layer2 the stages below it are frozen as `skinengine train
--fine-tune` freezes them (requires_grad off, BN in eval mode), so autograd records nothing there.

With --amp bf16|fp16 (CUDA) the step is PyTorch's mixed-precision recipe, the anchor of
`skinengine bench --train --precision bf16|fp16`: forward and loss under torch.autocast with that
dtype, channels_last, cudnn.benchmark on, FP32 master weights; fp16 adds a GradScaler
(scale, backward, unscale + inf check, step, update), as `train` scales fp16 runs.

Usage:
    python tools/bench_train_torch.py [--arch resnet50] [--batch 32] [--iters 3] [--threads 2]
        [--device cpu|cuda] [--fine-tune all|layer4|layer3|layer2] [--amp none|bf16|fp16]
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
    ap.add_argument("--fine-tune", default="all", choices=["all", "layer4", "layer3", "layer2"])
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    args = ap.parse_args()
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    if amp is not None:
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(args.device)
    formats = (torch.channels_last,) if amp is not None else (torch.contiguous_format, torch.channels_last)
    scaler = torch.amp.GradScaler("cuda") if args.amp == "fp16" else None
    for fmt in formats:
        torch.manual_seed(0)
        model = getattr(torchvision.models, args.arch)(weights=None).to(dev).train()
        model = model.to(memory_format=fmt)
        if args.fine_tune != "all":
            # ResNets: everything before the first trained stage is frozen.
            order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
            for name in order[: order.index(args.fine_tune)]:
                m = getattr(model, name)
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
        x = (torch.rand(args.batch, 3, 224, 224, device=dev) * 4 - 2).contiguous(memory_format=fmt)
        y = torch.randint(0, 1000, (args.batch,), device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            if amp is None:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                return loss.item()
            with torch.autocast(device_type=dev.type, dtype=amp):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
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
                          "fine_tune": args.fine_tune, "amp": args.amp,
                          "format": "channels_last" if fmt == torch.channels_last else "contiguous",
                          "batch": args.batch, "threads": args.threads, "median_ms": med * 1e3,
                          "images_per_s": args.batch / med}))


if __name__ == "__main__":
    main()
