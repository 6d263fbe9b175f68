#!/usr/bin/env python3
"""Writes tests/fixtures/sgd_torch.safetensors: a few steps of torch.optim.SGD in float64 for
each configuration the Rust SGD suite (src/ops/sgd/tests.rs) checks against.

    .venv-tools/bin/python tools/make_sgd_fixture.py [--out tests/fixtures/sgd_torch.safetensors]

One starting parameter `p0` [4, 5] and one gradient per step `grad1` .. `grad5` shared by every
configuration, all drawn in float32 and stored as float64 (so the f32 backends get exactly the
values torch started from). For each configuration NAME:
  NAME/config   [5] f64: lr, momentum, dampening, weight_decay, nesterov (0 / 1)
  NAME/param{t} [4, 5] f64: the parameter after step t (t = 1 .. 5)
  NAME/buf{t}   [4, 5] f64: torch's momentum buffer after step t (absent when momentum = 0)
torch runs on the CPU, float64, `foreach=False` (the single-tensor loop), one `step()` per
gradient, the gradient assigned to `p.grad`. The metadata (`source`) records the seed and torch version;
the file is byte-for-byte reproducible.
"""
import argparse
import os

import torch
from safetensors.torch import save_file

STEPS = 5
SHAPE = (4, 5)

# name: (lr, momentum, dampening, weight_decay, nesterov)
CONFIGS = {
    "plain": (0.1, 0.0, 0.0, 0.0, False),
    "weight_decay": (0.1, 0.0, 0.0, 0.05, False),
    "momentum": (0.05, 0.9, 0.0, 0.0, False),
    "dampening": (0.05, 0.9, 0.3, 0.0, False),
    "nesterov": (0.05, 0.9, 0.0, 0.0, True),
    # Typical fine-tuning settings: coupled decay entering the buffer, with and without Nesterov.
    "momentum_wd": (0.01, 0.9, 0.1, 5e-3, False),
    "nesterov_wd": (0.01, 0.9, 0.0, 5e-3, True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/sgd_torch.safetensors")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    gen = torch.Generator().manual_seed(args.seed)
    p0 = torch.randn(SHAPE, generator=gen, dtype=torch.float32).double()
    grads = [(0.5 * torch.randn(SHAPE, generator=gen, dtype=torch.float32)).double() for _ in range(STEPS)]
    out = {"p0": p0}
    for t, g in enumerate(grads, 1):
        out[f"grad{t}"] = g
    for name, (lr, mu, damp, wd, nesterov) in CONFIGS.items():
        p = torch.nn.Parameter(p0.clone())
        opt = torch.optim.SGD(
            [p], lr=lr, momentum=mu, dampening=damp, weight_decay=wd, nesterov=nesterov, foreach=False
        )
        out[f"{name}/config"] = torch.tensor([lr, mu, damp, wd, float(nesterov)], dtype=torch.float64)
        for t, g in enumerate(grads, 1):
            p.grad = g.clone()
            opt.step()
            out[f"{name}/param{t}"] = p.detach().clone()
            buf = opt.state[p].get("momentum_buffer")
            if mu != 0:
                out[f"{name}/buf{t}"] = buf.detach().clone()
            elif buf is not None:
                raise SystemExit(f"{name}: torch kept a momentum buffer without momentum")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in out.items()},
        args.out,
        # One key: safetensors writes metadata keys in no fixed order, and one keeps the file
        # byte-for-byte reproducible.
        metadata={"source": f"tools/make_sgd_fixture.py --seed {args.seed}, torch {torch.__version__}"},
    )
    print(f"wrote {args.out}: {len(out)} tensors, {len(CONFIGS)} configurations x {STEPS} steps")


if __name__ == "__main__":
    main()
