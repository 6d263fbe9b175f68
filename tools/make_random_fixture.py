#!/usr/bin/env python3
"""Writes a random torchvision-named ResNet50 state dict and random images, for
testing tools/torch_parity.py (and the Rust loader) without real weights.

Usage:
    python tools/make_random_fixture.py --weights W.safetensors --inputs X.safetensors \
        [--n 2] [--size 64] [--num-classes 1000] [--seed 0] [--keep-num-batches-tracked]

BN running stats and affine params are randomised (var in [0.5,1.5], mean ~N(0,0.1^2),
gamma in [0.5,1.5], beta ~N(0,0.1^2)) so that eval-mode BN is not an identity.
`num_batches_tracked` is dropped unless --keep-num-batches-tracked.
"""
import argparse
import os

import torch
import torchvision
from safetensors.torch import save_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-num-batches-tracked", action="store_true")
    args = ap.parse_args()

    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = torchvision.models.resnet50(weights=None, num_classes=args.num_classes)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    sd = {
        k: v.detach().float().contiguous()
        for k, v in model.state_dict().items()
        if args.keep_num_batches_tracked or not k.endswith("num_batches_tracked")
    }
    for path in (args.weights, args.inputs):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(sd, args.weights)
    images = torch.randn(args.n, 3, args.size, args.size, generator=g)
    save_file({"images": images.contiguous()}, args.inputs)
    print(f"wrote {args.weights} ({len(sd)} tensors) and {args.inputs} images {list(images.shape)}")


if __name__ == "__main__":
    main()
