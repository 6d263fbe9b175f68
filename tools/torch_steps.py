#!/usr/bin/env python3
"""PyTorch reference for fine-tuning steps: STEPS AdamW steps on one fixed batch through a whole
torchvision network in training mode (BN batch statistics, running statistics updated), with the
classifier at --lr and the backbone at --lr-backbone, weight decay only on parameters of rank
>= 2 (not on biases or BN gamma/beta), mean cross-entropy. Run in float64.

Usage:
    python tools/torch_steps.py --arch resnet18 --weights W.safetensors --inputs X.safetensors \
        --out OUT.safetensors [--steps 5] [--lr 1e-3] [--lr-backbone 1e-4] [--wd 0.01]

OUT: `loss` [STEPS] (the loss at each step, before its update) and the final state dict
(parameters and running statistics) under torchvision names.
"""
import argparse

import torch
import torchvision
from safetensors.torch import load_file, save_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-backbone", type=float, default=1e-4)
    ap.add_argument("--wd", type=float, default=0.01)
    args = ap.parse_args()
    torch.set_num_threads(2)
    sd = {k: v for k, v in load_file(args.weights).items() if not k.endswith("num_batches_tracked")}
    model = getattr(torchvision.models, args.arch)(weights=None, num_classes=sd["fc.weight"].shape[0])
    model.load_state_dict(sd, strict=False)
    model = model.double().train()
    inputs = load_file(args.inputs)
    x, y = inputs["images"].double(), inputs["labels"].long()
    groups = []
    for head in (False, True):
        for decay in (False, True):
            ps = [p for n, p in model.named_parameters() if n.startswith("fc.") == head and (p.ndim >= 2) == decay]
            groups.append({"params": ps, "lr": args.lr if head else args.lr_backbone,
                           "weight_decay": args.wd if decay else 0.0})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for _ in range(args.steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    out["loss"] = torch.tensor(losses, dtype=torch.float64)
    save_file(out, args.out, metadata={"torch": torch.__version__, "steps": str(args.steps)})
    print("losses", " ".join(f"{l:.8f}" for l in losses))


if __name__ == "__main__":
    main()
