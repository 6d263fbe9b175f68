#!/usr/bin/env python3
"""CPU throughput anchors for ResNet50 inference (224x224), to compare skinengine against.

Usage:
    python tools/bench_cpu_anchors.py --batch 8 --threads 2 [--iters N] [--warmup W] [--json]
                                      [--engines torch_nchw,torch_channels_last,onnxruntime]

Engines:
    torch_nchw           PyTorch CPU eager, NCHW (contiguous) tensors
    torch_channels_last  PyTorch CPU eager, model + input in channels_last (NHWC) memory format
    onnxruntime          torchvision resnet50 exported to ONNX (temp dir), ONNX Runtime CPU EP,
                         intra_op_num_threads=threads, inter_op_num_threads=1,
                         graph_optimization_level=ORT_ENABLE_ALL

Each engine is warmed up, then timed for --iters forward passes of one batch; the
median iteration time is reported. GFLOP/s uses 8.18 GFLOP per 224x224 image
(2 x 4.09 GMAC). Weights are random (throughput does not depend on values).
Output: one JSON object per engine per line with keys
    engine, batch, threads, images_per_s, gflop_per_s, version
(plus median_ms, iters); without --json a readable table is printed as well.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

GFLOP_PER_IMAGE = 8.18
ENGINES = ("torch_nchw", "torch_channels_last", "onnxruntime")


def time_iters(fn, warmup: int, iters: int) -> list:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_torch(model, x, channels_last: bool, warmup: int, iters: int):
    import torch

    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return time_iters(lambda: model(x), warmup, iters)


def bench_ort(model, x, threads: int, warmup: int, iters: int):
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory(prefix="skinengine-ort-") as tmp:
        path = os.path.join(tmp, "resnet50.onnx")
        export_kwargs = dict(
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}},
            opset_version=17,
        )
        try:
            # Legacy TorchScript exporter: needs no onnxscript. Deprecated since torch 2.9.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), path, dynamo=False, **export_kwargs)
        except TypeError:  # older torch without the dynamo kwarg
            torch.onnx.export(model, (x,), path, **export_kwargs)

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    xin = {"images": x.numpy()}
    return time_iters(lambda: sess.run(None, xin), warmup, iters), ort.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--size", type=int, default=224, help="image side (GFLOP scaled by (size/224)^2)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--json", action="store_true", help="print only the JSON lines")
    args = ap.parse_args()

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"error: unknown engine {e!r}; choose from {ENGINES}")

    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    gflop_per_image = GFLOP_PER_IMAGE * (args.size / 224.0) ** 2

    rows = []
    for engine in engines:
        if engine == "torch_nchw":
            times, version = bench_torch(model, x, False, args.warmup, args.iters), torch.__version__
        elif engine == "torch_channels_last":
            import copy

            times = bench_torch(copy.deepcopy(model), x, True, args.warmup, args.iters)
            version = torch.__version__
        else:
            times, version = bench_ort(model, x, args.threads, args.warmup, args.iters)
        med = statistics.median(times)
        ips = args.batch / med
        row = {
            "engine": engine,
            "batch": args.batch,
            "threads": args.threads,
            "images_per_s": round(ips, 3),
            "gflop_per_s": round(ips * gflop_per_image, 2),
            "version": version,
            "median_ms": round(med * 1e3, 2),
            "iters": args.iters,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    if not args.json:
        print(f"\n{'engine':<22}{'img/s':>10}{'GFLOP/s':>10}{'median ms':>12}  version", file=sys.stderr)
        for r in rows:
            print(
                f"{r['engine']:<22}{r['images_per_s']:>10.2f}{r['gflop_per_s']:>10.1f}{r['median_ms']:>12.1f}  {r['version']}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
