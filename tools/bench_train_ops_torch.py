#!/usr/bin/env python3
"""PyTorch (CPU) timings of the training-step kernels that benches/ops.rs times for skinengine's
`cpu` backend (groups cpu_train_b32 and cpu_conv2d_backward_b32), same shapes, same thread count,
and the ratio skinengine / torch from criterion's latest estimates.

Run both back to back on the same machine, so both see the same conditions:
    cargo bench --bench ops -- --quick 'cpu_train_b32|cpu_conv2d_backward_b32'
    python tools/bench_train_ops_torch.py [--threads 2] [--iters 10] [--criterion target/criterion]

torch is timed on its own kernels, not through autograd: aten::native_batch_norm(_backward),
threshold_backward, max_pool2d_with_indices_backward (given the forward's indices, which
skinengine recomputes), _adaptive_avg_pool2d_backward, convolution_backward (one output at a
time), and AdamW.step (foreach, and fused where this torch has it) over one 25.6M-value tensor.
Each time is the median of --iters runs after a warm-up run; a ratio > 1 means skinengine is
slower.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

BATCH = 32
# (criterion id, C, H, O, kernel, stride, padding): the default set of benches/ops.rs.
CONV = [
    (3, 224, 64, 7, 2, 3),
    (64, 56, 64, 3, 1, 1),
    (64, 56, 256, 1, 1, 0),
    (128, 56, 128, 3, 2, 1),
    (1024, 14, 256, 1, 1, 0),
    (512, 7, 512, 3, 1, 1),
]


def timed(fn, iters):
    fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def criterion_ms(root, group, name):
    path = os.path.join(root, group, name, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"] / 1e6
    except (OSError, KeyError, ValueError):
        return None


def train_kernels(iters):
    g = torch.Generator().manual_seed(0)
    out = {}
    x = torch.randn(BATCH, 256, 56, 56, generator=g)
    dy = torch.randn(BATCH, 256, 56, 56, generator=g)
    gamma = torch.rand(256, generator=g) + 0.5
    beta = torch.randn(256, generator=g)
    rm, rv = torch.zeros(256), torch.ones(256)
    eps = 1e-5
    bn = torch.ops.aten.native_batch_norm
    out["bn_train_fwd_256x56x56"] = timed(
        lambda: bn(x, gamma, beta, rm.clone(), rv.clone(), True, 0.1, eps), iters)
    _, save_mean, save_invstd = bn(x, gamma, beta, rm.clone(), rv.clone(), True, 0.1, eps)
    bnb = torch.ops.aten.native_batch_norm_backward
    mask = [True, True, True]
    out["bn_train_bwd_256x56x56"] = timed(
        lambda: bnb(dy, x, gamma, rm, rv, save_mean, save_invstd, True, eps, mask), iters)
    out["bn_frozen_bwd_256x56x56"] = timed(
        lambda: bnb(dy, x, gamma, rm, rv, None, None, False, eps, mask), iters)
    out["relu_bwd_256x56x56"] = timed(
        lambda: torch.ops.aten.threshold_backward(dy, x, 0.0), iters)
    out["add_256x56x56"] = timed(lambda: dy + x, iters)
    out["conv_bwd_bias_256x56x56"] = timed(lambda: dy.sum(dim=(0, 2, 3)), iters)
    del x, dy

    x = torch.randn(BATCH, 64, 112, 112, generator=g)
    y, idx = torch.ops.aten.max_pool2d_with_indices(x, [3, 3], [2, 2], [1, 1])
    dy = torch.randn_like(y)
    out["maxpool_bwd_64x112x112"] = timed(
        lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            dy, x, [3, 3], [2, 2], [1, 1], [1, 1], False, idx), iters)
    del x, y, idx, dy
    x = torch.randn(BATCH, 2048, 7, 7, generator=g)
    dy = torch.randn(BATCH, 2048, 1, 1, generator=g)
    out["avgpool_bwd_2048x7x7"] = timed(
        lambda: torch.ops.aten._adaptive_avg_pool2d_backward(dy, x), iters)
    del x, dy

    n = 25_557_032
    for fused in (False, True):
        p = torch.nn.Parameter(torch.randn(n, generator=g) * 0.05)
        p.grad = torch.randn(n, generator=g) * 1e-3
        try:
            opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=1e-4, fused=fused,
                                    foreach=None if fused else True)
            ms = timed(opt.step, iters)
        except (RuntimeError, TypeError) as e:  # no fused CPU AdamW in this torch
            print(f"AdamW fused={fused}: {e}")
            continue
        out["adamw_25.6M" + (" (fused)" if fused else "")] = ms
    return out


def conv_kernels(iters):
    g = torch.Generator().manual_seed(1)
    out = {}
    for ci, h, o, k, s, p in CONV:
        x = torch.rand(BATCH, ci, h, h, generator=g) * 2 - 1
        w = torch.randn(o, ci, k, k, generator=g) * (2.0 / (ci * k * k)) ** 0.5
        y = F.conv2d(x, w, stride=s, padding=p)
        dy = torch.randn_like(y)
        name = f"conv{k}x{k}s{s}_c{ci}_{h}x{h}_o{o}"
        cb = torch.ops.aten.convolution_backward
        args = (dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1)
        out["data_" + name] = timed(lambda: cb(*args, [True, False, False]), iters)
        out["weight_" + name] = timed(lambda: cb(*args, [False, True, False]), iters)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--criterion", default="target/criterion")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [(f"cpu_train_b{BATCH}", k, v) for k, v in train_kernels(a.iters).items()]
    rows += [(f"cpu_conv2d_backward_b{BATCH}", k, v) for k, v in conv_kernels(a.iters).items()]
    print(f"torch {torch.__version__}, {a.threads} threads, batch {BATCH}; median of {a.iters}; "
          f"skinengine: criterion's latest mean ({a.criterion})")
    print()
    print("| kernel | torch ms | skinengine ms | skinengine / torch |")
    print("|---|---|---|---|")
    for group, name, ms in rows:
        ours = criterion_ms(a.criterion, group, name.split(" ")[0])
        ratio = f"{ours / ms:.2f}" if ours is not None else "-"
        ours_s = f"{ours:.2f}" if ours is not None else "-"
        print(f"| {group}/{name} | {ms:.2f} | {ours_s} | {ratio} |")


if __name__ == "__main__":
    main()
