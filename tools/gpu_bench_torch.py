#!/usr/bin/env python3
"""PyTorch anchors for the GPU check (tools/gpu_check.sh runs this on the device machine).

    python3 tools/gpu_bench_torch.py --kernels kernels.jsonl --out torch.json
        [--batches 32,128] [--warmup 10] [--iters 30] [--device cuda|cpu] [--quick]

1. torchvision ResNet50 (weights=None: random init, eval, float32, NCHW contiguous) forward
   throughput in images/s at each batch size, first with TF32 off
   (torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False), then with
   both True. cudnn.benchmark = True; inputs are random normal (two sets, alternated), never
   zeros; warm-up passes first, then the median of --iters passes, each timed with CUDA events.
   Then the precisions skinengine's --precision compares with ("resnet50_precision", same
   timing): "default" = PyTorch's own defaults (cudnn.allow_tf32 True: convolutions in TF32;
   cuda.matmul.allow_tf32 False: the fc layer in FP32), NCHW; "amp_bf16_channels_last" /
   "amp_fp16_channels_last" = torch.autocast("cuda", dtype=torch.bfloat16 / torch.float16)
   with model and input in channels_last.
2. For each line of --kernels (skinengine bench-kernels JSON lines with the GEMM view m, n, k
   and the line's "precision", fp32 when absent): torch.matmul of random [m,k] x [k,n] (into a
   preallocated [m,n]) at that precision, the cuBLAS anchor: fp32 = float32 with TF32 off
   (SGEMM), tf32 = float32 with cuda.matmul.allow_tf32 on, bf16 / fp16 = bfloat16 / float16
   operands and output (cuBLAS accumulates in FP32): median ms and GFLOP/s = 2mnk / t. Shapes
   seen twice at one precision are timed once.

Writes --out (JSON): versions (torch, torchvision, CUDA, cuDNN), the card, the settings, a
"resnet50" list, a "matmul" list and an "errors" list (each failed part, with its traceback
tail; the other parts still run). Exit status 1 when any part failed.

--device cpu --quick is a smoke test for machines without a GPU (batch 2, 3 iterations, the
first 4 shapes, perf_counter timing): its numbers mean nothing.
"""

import argparse
import datetime as dt
import json
import math
import platform
import statistics
import sys
import time
import traceback


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", help="skinengine bench-kernels JSON lines (m, n, k per shape)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--batches", help="comma-separated ResNet50 batch sizes (default 32,128; "
                   "--quick: 2)")
    p.add_argument("--size", type=int, default=224, help="image side")
    p.add_argument("--warmup", type=int, default=10, help="ResNet50 warm-up passes per run")
    p.add_argument("--iters", type=int, default=30, help="ResNet50 timed passes (>= 20)")
    p.add_argument("--mm-warmup", type=int, default=5, help="matmul warm-up calls per shape")
    p.add_argument("--mm-iters", type=int, default=30, help="matmul timed calls (>= 20)")
    p.add_argument("--max-shapes", type=int, default=0, help="time only the first N shapes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: batch 2, 1 warm-up, 3 iterations, 4 shapes")
    a = p.parse_args(argv)
    if a.quick:
        a.batches, a.warmup, a.iters = a.batches or "2", 1, 3
        a.mm_warmup, a.mm_iters = 1, 3
        a.max_shapes = a.max_shapes or 4
    elif a.iters < 20 or a.mm_iters < 20:
        p.error("--iters and --mm-iters must be >= 20 (the median of at least 20); or --quick")
    a.batches = [int(b) for b in (a.batches or "32,128").split(",") if b.strip()]
    return a


# torch dtype of each bench-kernels precision's matmul operands (tf32: float32 with TF32 on).
MM_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def set_tf32(torch, on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def tf32_flags(torch):
    return {
        "cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cudnn.benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def timer(torch, device):
    """time_ms(fn, warmup, iters) -> list of per-call milliseconds."""

    def time_ms(fn, warmup, iters):
        for _ in range(warmup):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
            ev = []
            for _ in range(iters):
                s = torch.cuda.Event(enable_timing=True)
                e = torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                ev.append((s, e))
            torch.cuda.synchronize()
            return [s.elapsed_time(e) for s, e in ev]
        out = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    return time_ms


def spread(ms):
    return {
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
    }


def error_entry(part, exc):
    tb = traceback.format_exc().strip().splitlines()
    return {"part": part, "error": f"{type(exc).__name__}: {exc}", "traceback": tb[-12:]}


def time_resnet(torch, model, a, time_ms, result, b, fmt, amp_dtype, part, key, label, extra):
    """One ResNet50 timing at batch b: inputs in memory format `fmt`, autocast to `amp_dtype`
    (None: off); appends {batch, **extra, images_per_s, spread, ...} to result[key], or the
    error to result["errors"] (the other parts go on)."""
    dev = a.device
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    try:
        xs = [torch.randn(b, 3, a.size, a.size, generator=gen, device=dev)
              .contiguous(memory_format=fmt) for _ in range(2)]
        state = {"i": 0}

        def fwd():
            state["i"] += 1
            return model(xs[state["i"] % 2])

        with torch.inference_mode(), torch.autocast(
                device_type=dev, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            y = model(xs[0])
            finite = bool(torch.isfinite(y).all().item())
            ms = time_ms(fwd, a.warmup, a.iters)
        r = {
            "batch": b,
            **extra,
            "images_per_s": b / (statistics.median(ms) / 1e3),
            **spread(ms),
            "iters": a.iters,
            "warmup": a.warmup,
            "output_finite": finite,
            "flags": tf32_flags(torch),
        }
        result[key].append(r)
        print(f"resnet50 b={b:<4} {label:22} {r['images_per_s']:10.1f} img/s "
              f"median {r['median_ms']:.3f} ms", flush=True)
        del xs, y
    except Exception as e:  # noqa: BLE001 - recorded, the other parts go on
        result["errors"].append(error_entry(part, e))
        print(f"{part}: FAILED {e}", file=sys.stderr, flush=True)
    finally:
        if dev == "cuda":
            torch.cuda.empty_cache()


def bench_resnet(torch, torchvision, a, time_ms, result):
    model = torchvision.models.resnet50(weights=None).eval().to(a.device)
    for tf32 in (False, True):
        set_tf32(torch, tf32)
        for b in a.batches:
            time_resnet(torch, model, a, time_ms, result, b, torch.contiguous_format, None,
                        f"resnet50 batch {b} tf32={tf32}", "resnet50", f"tf32={tf32}",
                        {"tf32": tf32})
    set_tf32(torch, False)


def bench_resnet_precision(torch, torchvision, a, time_ms, result):
    model = torchvision.models.resnet50(weights=None).eval().to(a.device)
    amp_dtypes = {"amp_bf16_channels_last": torch.bfloat16,
                  "amp_fp16_channels_last": torch.float16}
    for mode in ("default", *amp_dtypes):
        # PyTorch's defaults (>= 1.12) in every mode; autocast picks bf16 / fp16 for convs and
        # matmuls.
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False
        amp = amp_dtypes.get(mode)
        fmt = torch.channels_last if amp else torch.contiguous_format
        model = model.to(memory_format=fmt)
        for b in a.batches:
            time_resnet(torch, model, a, time_ms, result, b, fmt, amp,
                        f"resnet50 batch {b} {mode}", "resnet50_precision", mode,
                        {"mode": mode})
    set_tf32(torch, False)


def read_shapes(path, result):
    shapes = []
    if not path:
        return shapes
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        result["errors"].append({"part": "kernels file", "error": str(e), "traceback": []})
        return shapes
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
            m, n, k = int(d["m"]), int(d["n"]), int(d["k"])
            if min(m, n, k) <= 0:
                raise ValueError("non-positive dimension")
            prec = d.get("precision") or "fp32"
            if prec not in MM_DTYPES:
                raise ValueError(f"unknown precision {prec!r}")
        except (ValueError, KeyError, TypeError) as e:
            # A bad line of skinengine's output, not a failure of this script (the report
            # lists it under data problems).
            result["skipped_kernel_lines"].append(f"line {i}: {e}: {line[:200]}")
            continue
        shapes.append({"kind": d.get("kind"), "name": d.get("name"), "m": m, "n": n, "k": k,
                       "precision": prec})
    return shapes


def bench_matmul(torch, a, time_ms, result):
    shapes = read_shapes(a.kernels, result)
    result["kernel_lines"] = len(shapes)
    if a.max_shapes:
        shapes = shapes[: a.max_shapes]
    dev = a.device
    set_tf32(torch, False)
    gen = torch.Generator(device=dev).manual_seed(a.seed + 1)
    done = {}
    for s in shapes:
        prec = s["precision"]
        key = (s["m"], s["n"], s["k"], prec)
        part = f"matmul {s['name']} m={key[0]} n={key[1]} k={key[2]} {prec}"
        try:
            if key not in done:
                m, n, k = key[:3]
                dtype = getattr(torch, MM_DTYPES[prec])
                torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
                A = torch.randn(m, k, generator=gen, device=dev).to(dtype)
                B = torch.randn(k, n, generator=gen, device=dev).to(dtype)
                C = torch.empty(m, n, device=dev, dtype=dtype)
                ms = time_ms(lambda: torch.matmul(A, B, out=C), a.mm_warmup, a.mm_iters)
                finite = bool(torch.isfinite(C).all().item())
                done[key] = {**spread(ms), "output_finite": finite}
                del A, B, C
            t = done[key]
            gflop = 2.0 * s["m"] * s["n"] * s["k"] / 1e9
            r = {**s, "gflop": gflop, **t, "gflop_per_s": gflop / (t["median_ms"] / 1e3),
                 "tf32": prec == "tf32", "iters": a.mm_iters}
            result["matmul"].append(r)
            print(f"matmul {str(s['name'])[:28]:28} {s['m']:>6} {s['n']:>8} {s['k']:>6} {prec:4} "
                  f"{r['median_ms']:9.4f} ms {r['gflop_per_s']:10.1f} GFLOP/s", flush=True)
        except Exception as e:  # noqa: BLE001
            result["errors"].append(error_entry(part, e))
            print(f"{part}: FAILED {e}", file=sys.stderr, flush=True)
        finally:
            if dev == "cuda":
                torch.cuda.empty_cache()
    set_tf32(torch, False)
    result["matmul_flags"] = tf32_flags(torch)


def main(argv=None):
    a = parse_args(argv)
    result = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": a.device,
        "quick": a.quick,
        "python": platform.python_version(),
        "settings": {k: v for k, v in vars(a).items() if k not in ("out",)},
        "resnet50": [],
        "resnet50_precision": [],
        "matmul": [],
        "errors": [],
        "skipped_kernel_lines": [],
    }

    def write():
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")

    try:
        import torch
        import torchvision
    except Exception as e:  # noqa: BLE001
        result["errors"].append(error_entry("import torch/torchvision", e))
        write()
        print(f"import failed: {e}", file=sys.stderr)
        return 1

    result.update({
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    })
    try:
        if a.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False")
            p = torch.cuda.get_device_properties(0)
            result["card"] = torch.cuda.get_device_name(0)
            result["sm_count"] = p.multi_processor_count
            result["capability"] = f"{p.major}.{p.minor}"
            result["gpu_memory_mib"] = math.floor(p.total_memory / 2**20)
        else:
            result["card"] = f"cpu ({platform.processor() or platform.machine()})"
            result["threads"] = torch.get_num_threads()
        torch.backends.cudnn.benchmark = True
        time_ms = timer(torch, a.device)
    except Exception as e:  # noqa: BLE001
        result["errors"].append(error_entry("device setup", e))
        write()
        print(f"device setup failed: {e}", file=sys.stderr)
        return 1

    print(f"{result['card']}: torch {result['torch']}, torchvision {result['torchvision']}, "
          f"CUDA {result['cuda']}, cuDNN {result['cudnn']}", flush=True)
    try:
        bench_resnet(torch, torchvision, a, time_ms, result)
    except Exception as e:  # noqa: BLE001
        result["errors"].append(error_entry("resnet50", e))
    write()  # the ResNet numbers survive a matmul part that is killed
    try:
        bench_resnet_precision(torch, torchvision, a, time_ms, result)
    except Exception as e:  # noqa: BLE001
        result["errors"].append(error_entry("resnet50 precision", e))
    write()
    try:
        bench_matmul(torch, a, time_ms, result)
    except Exception as e:  # noqa: BLE001
        result["errors"].append(error_entry("matmul", e))
    write()
    if result["errors"]:
        print(f"{len(result['errors'])} part(s) failed: see 'errors' in {a.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
