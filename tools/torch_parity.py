#!/usr/bin/env python3
"""Reference ResNet50 forward pass with PyTorch/torchvision, for parity tests.

Usage:
    python tools/torch_parity.py --weights W.safetensors --inputs X.safetensors --out OUT.safetensors

W    torchvision-named ResNet50 state dict (conv1.weight, bn1.*, layer{1..4}.{i}.*,
     fc.weight, fc.bias), f32. `*.num_batches_tracked` may be absent; every other
     key must match exactly (no missing, no unexpected keys).
X    tensor `images`, f32 [N,3,H,W], already normalised.
OUT  tensors:
       features      f32 [N,2048]   global-average-pool output (input to fc)
       logits        f32 [N,C]      C = fc.weight.shape[0] (1000 for ImageNet)
       features_f64  f64 [N,2048]   same, whole model + input in float64
       logits_f64    f64 [N,C]
       stem          f32 [1,64,H/4,W/4]  conv1->bn1->relu->maxpool, first image only
     metadata {"torch": ..., "torchvision": ...}
"""
import argparse
import copy
import os
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file


def load_model(weights_path: str) -> torch.nn.Module:
    sd = load_file(weights_path)
    if "fc.weight" not in sd:
        sys.exit(f"error: {weights_path} has no fc.weight; not a torchvision ResNet50 state dict")
    num_classes = sd["fc.weight"].shape[0]
    model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    for k, v in sd.items():
        if v.is_floating_point() and v.dtype != torch.float32:
            sys.exit(f"error: {k} has dtype {v.dtype}, expected float32")
    res = model.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or res.unexpected_keys:
        sys.exit(
            "error: state dict mismatch\n"
            f"  missing ({len(missing)}): {missing[:20]}\n"
            f"  unexpected ({len(res.unexpected_keys)}): {res.unexpected_keys[:20]}"
        )
    return model.eval()


def run(model: torch.nn.Module, x: torch.Tensor):
    """Runs the stock torchvision forward; captures the fc input and maxpool output via hooks."""
    captured = {}

    def fc_pre_hook(_mod, args):
        captured["features"] = args[0].detach().clone()

    def maxpool_hook(_mod, _args, out):
        captured["stem"] = out[:1].detach().clone()

    h1 = model.fc.register_forward_pre_hook(fc_pre_hook)
    h2 = model.maxpool.register_forward_hook(maxpool_hook)
    try:
        with torch.inference_mode():
            logits = model(x)
    finally:
        h1.remove()
        h2.remove()
    return captured["features"], logits, captured["stem"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)

    inputs = load_file(args.inputs)
    if "images" not in inputs:
        sys.exit(f"error: {args.inputs} has no tensor 'images' (has {list(inputs)})")
    x = inputs["images"]
    if x.dim() != 4 or x.shape[1] != 3:
        sys.exit(f"error: images must be [N,3,H,W], got {list(x.shape)}")
    if x.dtype != torch.float32:
        sys.exit(f"error: images must be float32, got {x.dtype}")
    x = x.contiguous()

    model = load_model(args.weights)
    features, logits, stem = run(model, x)

    model64 = copy.deepcopy(model).double()
    features64, logits64, _ = run(model64, x.double())

    out = {
        "features": features.float().contiguous(),
        "logits": logits.float().contiguous(),
        "features_f64": features64.double().contiguous(),
        "logits_f64": logits64.double().contiguous(),
        "stem": stem.float().contiguous(),
    }
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(out, args.out, metadata=meta)

    diff = (logits.double() - logits64).abs().max().item()
    print(
        f"wrote {args.out}: "
        + ", ".join(f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}" for k, v in out.items())
        + f"; max|logits_f32 - logits_f64| = {diff:.3e}"
    )


if __name__ == "__main__":
    main()
