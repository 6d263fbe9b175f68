#!/usr/bin/env python3
"""PyTorch autograd reference for `skinengine grads`: loss and the gradient of every parameter
of a torchvision network through its own classifier.

Usage:
    python tools/torch_grads.py --arch resnet50 --weights W.safetensors --inputs X.safetensors \
        --out G.safetensors [--bn train|eval] [--dtype f64|f32]

W    torchvision-named state dict with its classifier (fc.* / classifier.6.*).
X    `images` [N,3,H,W] (already normalised) and `labels` [N] (class indices, any dtype);
     `skinengine grads` writes both into its output, so its own file can be passed here.
OUT  `loss` [1] and one gradient per parameter under the parameter's name (running statistics
     are buffers, not parameters, so they have none), in --dtype (default f64: the whole model
     and input are cast to float64 first, the reference our f32 results are measured against).

BN modes: `train` = model.train() (batch statistics; torchvision's VGG dropout is disabled so
both sides compute the same function), `eval` = model.eval(). Mean cross-entropy over the batch.
"""
import argparse
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file


def build(arch: str, sd: dict) -> torch.nn.Module:
    cls = "classifier.6.weight" if arch == "vgg19" else "fc.weight"
    if cls not in sd:
        sys.exit(f"error: the weights have no {cls}")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=sd[cls].shape[0])
    res = model.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or res.unexpected_keys:
        sys.exit(f"error: state dict mismatch: missing {missing[:10]}, unexpected {res.unexpected_keys[:10]}")
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bn", choices=["train", "eval"], default="train")
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.dtype == "f64" else torch.float32
    sd = {k: v for k, v in load_file(args.weights).items() if not k.endswith("num_batches_tracked")}
    model = build(args.arch, sd).to(dtype)
    inputs = load_file(args.inputs)
    x = inputs["images"].to(dtype)
    y = inputs["labels"].long()
    model.train(args.bn == "train")
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        out[name] = p.grad.detach().contiguous()
    save_file(out, args.out, metadata={"torch": torch.__version__, "torchvision": torchvision.__version__,
                                       "arch": args.arch, "bn": args.bn, "dtype": args.dtype})
    print(f"{args.arch} bn={args.bn} loss {loss.item():.10f}; {len(out) - 1} gradients -> {args.out}")


if __name__ == "__main__":
    main()
