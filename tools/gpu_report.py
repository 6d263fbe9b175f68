#!/usr/bin/env python3
"""Merge the GPU check's outputs into one markdown section (tools/gpu_check.sh runs this last).

    python3 tools/gpu_report.py [--dir $OUT] [--out FILE]

Reads, from --dir (default $OUT, else /tmp/gpu-out):
  gpu_check.log   the steps, between `##[step] NAME | ...` and `##[end] NAME | status=...` lines
  env.txt         key=value: date, card, driver, NVRTC, build info (tools/gpu_build.sh)
  bench.jsonl     `skinengine bench --device cuda --json` objects (one per batch size)
  bench_precision.jsonl  the same at --precision tf32 / bf16 / fp16 (key "precision":
                  "conv P matmul Q"), shown against torch.json "resnet50_precision"
  kernels.jsonl   `skinengine bench-kernels --device cuda --json` lines (GEMM view m, n, k)
  torch.json      tools/gpu_bench_torch.py (PyTorch ResNet50 FP32/TF32, cuBLAS SGEMM anchors)
  train.jsonl     training steps: `skinengine bench --train --json` lines (key "precision") and
                  tools/bench_train_torch.py lines (keys "torch", "format", "amp")
and, from the log's embed_rate step (its stdout), the JSON lines of tools/gpu_embed_rate.sh
(embed, decoding included, against the forward alone; key "decode").
and writes the section to --out (default DIR/gpu_results_section.md), then prints it.
Only numbers found in these files are shown: a missing one is '—', and a failed step is named
with the tail of its output. Standard library only.
"""

import argparse
import datetime as dt
import json
import os
import re
import sys

GOAL = 0.70  # per-shape goal: our GFLOP/s >= GOAL x cuBLAS SGEMM (TF32 off)
TC_GOAL = 0.90  # per-shape goal at tf32/bf16/fp16 (issue 12): >= 0.9x cuBLAS at that precision
DASH = "—"
TAIL_LINES = 25
TAIL_CHARS = 2000  # per failed step's output tail
TAIL_BUDGET = 4000  # for all the tails together (each gets at least 600)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_env(path):
    env = {}
    for line in (read_text(path) or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


def read_jsonl(path, required):
    """(rows, problems): objects with every key of `required` (name -> type)."""
    rows, problems = [], []
    text = read_text(path)
    if text is None:
        return rows, [f"{os.path.basename(path)}: missing"]
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("not an object")
            for k, t in required.items():
                if k not in d:
                    raise ValueError(f"no key {k!r}")
                if not isinstance(d[k], t) or isinstance(d[k], bool):
                    raise ValueError(f"{k!r} is {type(d[k]).__name__}")
        except ValueError as e:
            problems.append(f"{os.path.basename(path)} line {i}: {e}: {line[:120]}")
            continue
        rows.append(d)
    return rows, problems


def parse_log(text):
    """Ordered steps: name, timeout, cmd, status, rc, secs, lines (the step's output)."""
    steps, cur = [], None
    start = re.compile(r"^##\[step\] (\S+) \| timeout (-?\d+)s \| (\S+) \| (.*)$")
    end = re.compile(r"^##\[end\] (\S+) \| status=(\w+) \| rc=(\S+) \| secs=(\S+)$")
    for line in (text or "").splitlines():
        m = start.match(line)
        if m:
            cur = {"name": m[1], "timeout": m[2], "cmd": m[4], "status": "unfinished",
                   "rc": None, "secs": None, "lines": []}
            steps.append(cur)
            continue
        m = end.match(line)
        if m and cur is not None and m[1] == cur["name"]:
            cur.update(status=m[2], rc=m[3], secs=m[4])
            cur = None
            continue
        if cur is not None:
            cur["lines"].append(line)
    return steps


def tail(lines, chars=TAIL_CHARS):
    t = "\n".join(lines[-TAIL_LINES:])
    if len(t) > chars:
        t = "…" + t[-chars:]
    return t.replace("```", "'''")


def fnum(x, nd):
    if x is None:
        return DASH
    try:
        x = float(x)
    except (TypeError, ValueError):
        return DASH
    return f"{x:,.{nd}f}"


def ratio(a, b):
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return None
    return a / b if b > 0 else None


def parity_summary(step):
    if step is None:
        return "not run (no `parity` step in the log)", []
    lines = step["lines"]
    counts = {"passed": 0, "failed": 0, "ignored": 0, "filtered out": 0}
    found = False
    for line in lines:
        m = re.match(r"^test result: (\w+)\. (.*)$", line)
        if m:
            found = True
            for n, what in re.findall(r"(\d+) (passed|failed|ignored|filtered out)", m[2]):
                counts[what] += int(n)
    failed = [m[1] for line in lines if (m := re.match(r"^test (\S+) \.\.\. FAILED", line))]
    st = step["status"]
    word = "PASS" if st == "pass" else ("TIMEOUT" if st == "timeout" else "FAIL")
    if st == "skipped":
        word = "SKIPPED"
    if found:
        s = (f"**{word}**: {counts['passed']} passed, {counts['failed']} failed, "
             f"{counts['ignored']} ignored, {counts['filtered out']} filtered out")
    else:
        s = f"**{word}**: no `test result` line (the test binary did not finish)"
    s += f" ({step['secs'] or '?'} s, exit status {step['rc'] or '?'})"
    return s, failed


PREC_GOAL = 1.0  # ResNet50 goal (issue 12): TF32 >= PyTorch's default, BF16 >= PyTorch AMP


def conv_precision(s):
    """'conv tf32 matmul fp32' -> 'tf32' (None when the line has no such field)."""
    m = re.match(r"^conv (\w+) matmul (\w+)$", s or "")
    return m[1] if m else None


def precision_table(bench, prec, torch):
    """The tensor-core table: skinengine at each --precision (bench_precision.jsonl) against its
    own FP32 run (bench.jsonl) and PyTorch's anchors of the same batch (torch.json
    resnet50_precision: "default" = cuDNN TF32 convolutions, NCHW; "amp_bf16_channels_last",
    "amp_fp16_channels_last": autocast in that format, channels_last)."""
    out = ["### ResNet50 forward at each precision, 224×224, images/s", ""]
    out.append("skinengine: `bench --device cuda --precision P --batch B --json`; PyTorch "
               "default: cudnn.allow_tf32 True, matmul.allow_tf32 False, NCHW; PyTorch AMP: "
               "autocast bf16 / fp16, channels_last. Goal: TF32 ≥ "
               f"{PREC_GOAL:.1f}× PyTorch default, BF16/FP16 ≥ {PREC_GOAL:.1f}× PyTorch AMP.")
    out.append("")
    if not prec:
        out.append("No precision runs (`bench_precision.jsonl` empty or missing).")
        out.append("")
        return out
    tp = torch.get("resnet50_precision") or []
    out.append("| precision | layout | batch | skinengine | skinengine FP32 | vs own FP32 "
               "| PyTorch default | PyTorch AMP (same format) | ratio to goal anchor | goal |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted(prec, key=lambda r: (r["batch"], r.get("precision", ""),
                                         r.get("layout", ""))):
        b = r["batch"]
        cp = conv_precision(r.get("precision"))
        fp32 = next((x["images_per_s"] for x in bench if x["batch"] == b), None)
        dflt = next((x.get("images_per_s") for x in tp
                     if x.get("batch") == b and x.get("mode") == "default"), None)
        # The AMP run in the format of this line (bf16 or fp16).
        amp = next((x.get("images_per_s") for x in tp
                    if x.get("batch") == b and x.get("mode") == f"amp_{cp}_channels_last"), None)
        anchor = {"tf32": dflt, "bf16": amp, "fp16": amp}.get(cp)
        rr = ratio(r["images_per_s"], anchor)
        flag = DASH if rr is None else ("ok" if rr >= PREC_GOAL else "**below**")
        cell = fnum(r["images_per_s"], 1)
        if r.get("device") != "cuda":
            cell += f" (device {r.get('device')}!)"
        out.append(f"| {r.get('precision', DASH)} | {r.get('layout', DASH)} | {b} | {cell} "
                   f"| {fnum(fp32, 1)} "
                   f"| {fnum(ratio(r['images_per_s'], fp32), 2)} | {fnum(dflt, 1)} "
                   f"| {fnum(amp, 1)} | {fnum(rr, 2)} | {flag} |")
    out.append("")
    return out


EMBED_GOAL = 0.8  # issue 13: embed (decoding included) within 80% of the forward-only rate


def embed_table(step):
    """tools/gpu_embed_rate.sh's JSON lines (in the embed_rate step's output) as a table."""
    out = ["### `embed` against the forward alone (decoding keeps up?)", ""]
    rows = []
    for line in (step or {}).get("lines", []):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and "decode" in d:
            rows.append(d)
    if not rows:
        out.append("No embed-rate runs (the embed_rate step did not run or printed no result).")
        out.append("")
        return out
    out.append("`tools/gpu_embed_rate.sh`: synthetic 600×450 JPEGs, `embed --weights` (random-init "
               "ResNet50) over N0 and over N images; marginal = (N − N0) / (t_N − t_N0), which "
               "leaves out loading the weights and building the model; forward = `bench` at the "
               f"same batch and precision. Goal (issue 13): marginal ≥ {EMBED_GOAL:.1f}× forward.")
    out.append("")
    out.append("| decode | precision | batch | images | embed images/s (whole run) "
               "| marginal images/s | forward images/s | ratio | CPU cores | goal |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for d in rows:
        r = d.get("ratio")
        flag = DASH if r is None else ("ok" if r >= EMBED_GOAL else "**below**")
        out.append(f"| {d.get('decode')} | {d.get('precision')} | {d.get('batch')} "
                   f"| {d.get('images')} | {fnum(d.get('embed_images_per_s'), 1)} "
                   f"| {fnum(d.get('marginal_images_per_s'), 1)} "
                   f"| {fnum(d.get('forward_images_per_s'), 1)} | {fnum(r, 2)} "
                   f"| {d.get('cores', DASH)} | {flag} |")
    out.append("")
    return out


def training_table(train):
    """Training steps (ResNet50, batch 32): skinengine at each precision against PyTorch eager
    FP32 (the faster memory format) and PyTorch AMP at the same 16-bit format."""
    out = ["### ResNet50 training step (forward, backward, AdamW), 224×224, images/s", ""]
    out.append("skinengine: `bench --train --device cuda --precision P --batch B --json` (fp16 "
               "loss-scaled as `train` runs it); PyTorch: tools/bench_train_torch.py, eager, "
               "TF32 off, or `--amp bf16|fp16` (autocast, channels_last, cudnn.benchmark; "
               f"GradScaler for fp16). Goal (issue 12): BF16/FP16 ≥ {PREC_GOAL:.1f}× PyTorch AMP.")
    out.append("")
    ours = [r for r in train if r.get("mode") == "train" and isinstance(r.get("images_per_s"), (int, float))]
    theirs = [r for r in train if "torch" in r and isinstance(r.get("images_per_s"), (int, float))]
    if not ours:
        out.append("No training-step runs (`train.jsonl` empty or missing).")
        out.append("")
        return out
    out.append("| precision | activations | batch | skinengine | peak act. MiB | PyTorch anchor "
               "| anchor | ratio | goal |")
    out.append("|---|---|---:|---:|---:|---:|---|---:|---|")
    for r in sorted(ours, key=lambda r: (r.get("batch", 0), r.get("precision", ""),
                                         r.get("activations", ""))):
        b = r.get("batch")
        p = conv_precision(r.get("precision")) or "fp32"
        amp = p if p in ("bf16", "fp16") else "none"
        cands = [t for t in theirs if t.get("batch") == b and t.get("amp", "none") == amp]
        best = max(cands, key=lambda t: t["images_per_s"], default=None)
        anchor = best["images_per_s"] if best else None
        what = DASH if best is None else (
            f"AMP {amp}, {best.get('format')}" if amp != "none" else f"FP32, {best.get('format')}")
        rr = ratio(r["images_per_s"], anchor)
        flag = DASH if rr is None or amp == "none" else ("ok" if rr >= PREC_GOAL else "**below**")
        peak = r.get("peak_activation_bytes")
        peak = peak / 2**20 if isinstance(peak, (int, float)) else None
        out.append(f"| {r.get('precision', 'fp32')} | {r.get('activations', 'fp32')} | {b} "
                   f"| {fnum(r['images_per_s'], 1)} | {fnum(peak, 0)} | {fnum(anchor, 1)} "
                   f"| {what} | {fnum(rr, 2)} | {flag} |")
    out.append("")
    return out


def section(d):
    env = read_env(os.path.join(d, "env.txt"))
    steps = parse_log(read_text(os.path.join(d, "gpu_check.log")))
    # The report step is still running while this runs: leave it out.
    steps = [s for s in steps if not (s["name"] == "report" and s["status"] == "unfinished")]
    by_name = {s["name"]: s for s in steps}
    bench, bench_problems = read_jsonl(
        os.path.join(d, "bench.jsonl"),
        {"device": str, "batch": int, "images_per_s": (int, float)})
    prec, prec_problems = read_jsonl(
        os.path.join(d, "bench_precision.jsonl"),
        {"device": str, "batch": int, "precision": str, "images_per_s": (int, float)})
    kernels, kernel_problems = read_jsonl(
        os.path.join(d, "kernels.jsonl"),
        {"kind": str, "name": str, "m": int, "n": int, "k": int, "gflop": (int, float),
         "median_ms": (int, float), "gflop_per_s": (int, float)})
    torch_text = read_text(os.path.join(d, "torch.json"))
    torch, torch_problem = {}, None
    if torch_text is None:
        torch_problem = "torch.json missing"
    else:
        try:
            torch = json.loads(torch_text)
        except ValueError as e:
            torch_problem = f"torch.json unreadable: {e}"

    out = []
    date = env.get("date_utc") or torch.get("date_utc")
    when = date.replace("T", " ").replace("Z", " UTC") if date else (
        dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") + " (report time)")
    card = next((c for c in (env.get("card"), torch.get("card")) if c and c != "unknown"),
                "unknown card")
    out.append(f"## GPU check {when} — {card}")
    out.append("")

    warnings = []
    if env.get("source_match") == "no":
        warnings.append("the source tree on the device differs from the one the binaries were "
                        "built from (run tools/gpu_build.sh again)")
    if env.get("build_warning"):
        warnings.append(env["build_warning"])
    if torch and torch.get("device") not in (None, "cuda"):
        warnings.append(f"the PyTorch anchors ran on {torch.get('device')} "
                        f"(quick={torch.get('quick')}): not GPU numbers")
    for w in warnings:
        out.append(f"**WARNING: {w}.**")
        out.append("")

    driver = env.get("driver", DASH)
    out.append(f"- card: {card} ({env.get('gpu_memory', DASH)}), driver {driver}, "
               f"CUDA driver API {env.get('cuda_driver_api', DASH)}")
    if env.get("build_commit"):
        out.append(f"- skinengine: commit {env['build_commit']} with "
                   f"{env.get('build_local_changes', '?')} locally changed source path(s), built "
                   f"{env.get('build_built_utc', '?')} ({env.get('build_rustc', '?')}); "
                   f"device tree matches the build: {env.get('source_match', 'unknown')}")
    else:
        out.append("- skinengine: no build info (.gpu-carry/build_info.txt missing)")
    out.append(f"- NVRTC: {env.get('nvrtc', DASH)}; libcuda: {env.get('libcuda', DASH)}")
    if torch.get("torch"):
        out.append(f"- PyTorch {torch['torch']}, torchvision {torch.get('torchvision')}, "
                   f"CUDA {torch.get('cuda')}, cuDNN {torch.get('cudnn')}"
                   + (f", {torch['sm_count']} SMs" if torch.get("sm_count") else ""))
    else:
        out.append(f"- PyTorch: {torch_problem or 'no version recorded'}")
    if steps:
        out.append("- steps: " + ", ".join(
            f"{s['name']} {s['status'] if s['status'] == 'pass' else s['status'].upper()}"
            + (f" ({s['secs']} s)" if s["secs"] else "") for s in steps))
    else:
        out.append("- steps: gpu_check.log missing or empty")
    out.append("")

    # Parity suite
    summary, failed = parity_summary(by_name.get("parity"))
    out.append(f"**Parity suite** (`.gpu-carry/cuda_gpu --ignored --test-threads 1`): {summary}")
    if failed:
        out.append("")
        out.append("Failed tests: " + ", ".join(f"`{t}`" for t in failed))
    out.append("")

    # ResNet50 throughput
    out.append("### ResNet50 forward, 224×224, float32, images/s")
    out.append("")
    iters = env.get("bench_iters")
    out.append("skinengine: `bench --device cuda --batch B --json`"
               + (f" (median of {iters})" if iters else "")
               + "; PyTorch: torchvision resnet50, eval, NCHW, cudnn.benchmark, CUDA events, "
               + "median of " + str((torch.get("settings") or {}).get("iters", DASH)) + ".")
    out.append("")
    out.append("| batch | skinengine | PyTorch FP32 (TF32 off) | PyTorch TF32 "
               "| skinengine / FP32 | skinengine / TF32 |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    tr = torch.get("resnet50") or []
    batches = sorted({b["batch"] for b in bench} | {r.get("batch") for r in tr
                                                     if isinstance(r.get("batch"), int)}
                     | {32, 128})
    for b in batches:
        ours = next((x for x in bench if x["batch"] == b), None)
        fp32 = next((r for r in tr if r.get("batch") == b and r.get("tf32") is False), None)
        tf32 = next((r for r in tr if r.get("batch") == b and r.get("tf32") is True), None)
        o = ours["images_per_s"] if ours else None
        ocell = fnum(o, 1)
        if ours and ours.get("device") != "cuda":
            ocell += f" (device {ours.get('device')}!)"
        f = fp32.get("images_per_s") if fp32 else None
        t = tf32.get("images_per_s") if tf32 else None
        out.append(f"| {b} | {ocell} | {fnum(f, 1)} | {fnum(t, 1)} "
                   f"| {fnum(ratio(o, f), 2)} | {fnum(ratio(o, t), 2)} |")
    out.append("")

    out.extend(precision_table(bench, prec, torch))
    train, _ = read_jsonl(os.path.join(d, "train.jsonl"), {"images_per_s": (int, float)})
    out.extend(training_table(train))
    out.extend(embed_table(by_name.get("embed_rate")))

    # Per-kernel GEMM shapes
    out.append(f"### Conv/dense GEMM shapes (batch 32): skinengine vs cuBLAS at the same "
               f"precision (torch.matmul: fp32 = SGEMM with TF32 off, tf32 = allow_tf32, "
               f"bf16/fp16 operands); kind conv_cl = the channels-last path; goal ratio ≥ "
               f"{GOAL:.2f} at fp32, ≥ {TC_GOAL:.2f} on tensor cores")
    out.append("")
    mm = {}
    for r in torch.get("matmul") or []:
        try:
            mm.setdefault((int(r["m"]), int(r["n"]), int(r["k"]), r.get("precision", "fp32")), r)
        except (KeyError, TypeError, ValueError):
            pass
    notes = []
    if kernels:
        out.append("| kind | name | precision | m | n | k | GFLOP | ours ms | ours GFLOP/s "
                   "| cuBLAS GFLOP/s | ratio | goal |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        met = compared = 0
        tot_gflop = tot_ours = tot_cublas = 0.0
        for kr in kernels:
            key = (kr["m"], kr["n"], kr["k"], kr.get("precision", "fp32"))
            c = mm.get(key)
            cg = c.get("gflop_per_s") if c else None
            r = ratio(kr["gflop_per_s"], cg)
            flag = DASH
            if r is not None:
                compared += 1
                goal = GOAL if kr.get("precision", "fp32") == "fp32" else TC_GOAL
                met += r >= goal
                flag = "ok" if r >= goal else "**below**"
                tot_gflop += kr["gflop"]
                tot_ours += kr["median_ms"]
                tot_cublas += c["median_ms"]
            expect = 2.0 * kr["m"] * kr["n"] * kr["k"] / 1e9
            if abs(kr["gflop"] - expect) > 0.01 * expect:
                notes.append(f"`{kr['name']}`: gflop {kr['gflop']:.4g} ≠ 2mnk/1e9 = {expect:.4g}")
            if kr["median_ms"] > 0:
                rate = kr["gflop"] / (kr["median_ms"] / 1e3)
                if abs(kr["gflop_per_s"] - rate) > 0.02 * rate:
                    notes.append(f"`{kr['name']}`: gflop_per_s {kr['gflop_per_s']:.4g} ≠ "
                                 f"gflop/median = {rate:.4g}")
            out.append(f"| {kr['kind']} | {kr['name']} | {kr.get('precision', 'fp32')} "
                       f"| {kr['m']} | {kr['n']} | {kr['k']} "
                       f"| {fnum(kr['gflop'], 3)} | {fnum(kr['median_ms'], 4)} "
                       f"| {fnum(kr['gflop_per_s'], 0)} | {fnum(cg, 0)} | {fnum(r, 2)} | {flag} |")
        out.append("")
        if compared:
            ours_rate = tot_gflop / (tot_ours / 1e3) if tot_ours else None
            cublas_rate = tot_gflop / (tot_cublas / 1e3) if tot_cublas else None
            out.append(f"{met} of {compared} shapes meet the goal; over all compared shapes "
                       f"(total GFLOP / total time): ours {fnum(ours_rate, 0)} GFLOP/s, "
                       f"cuBLAS {fnum(cublas_rate, 0)} GFLOP/s, "
                       f"ratio {fnum(ratio(ours_rate, cublas_rate), 2)}.")
        else:
            out.append("No shape has a cuBLAS anchor (see the torch step).")
        out.append("")
    else:
        out.append("No kernel shapes (`bench-kernels` gave no valid JSON line).")
        out.append("")
    problems = bench_problems + prec_problems + kernel_problems
    if torch_problem:
        problems.append(torch_problem)
    if notes or problems:
        out.append("Data problems:")
        out.append("")
        for n in notes + problems:
            out.append(f"- {n}")
        out.append("")

    # Failures, with the output tails
    bad = [s for s in steps if s["status"] != "pass" and s["name"] != "report"]
    terr = torch.get("errors") or []
    # The device tool returns only the last 12,000 characters of output: keep the tails short
    # enough that the tables above stay in it when many steps fail.
    per_tail = max(600, TAIL_BUDGET // max(1, len(bad)))
    if bad or terr:
        out.append("### Failures")
        out.append("")
        for s in bad:
            if s["status"] == "skipped":
                out.append(f"**{s['name']}: SKIPPED** (the time budget was spent): "
                           f"`{s['cmd'][:200]}`")
                out.append("")
                continue
            out.append(f"**{s['name']}: {s['status'].upper()}** (exit status {s['rc'] or '-'}, "
                       f"{s['secs'] or '?'} s, time limit "
                       f"{s['timeout'] + ' s' if s['timeout'] != '0' else 'none'}): `{s['cmd'][:200]}`")
            out.append("")
            out.append("```")
            out.append(tail(s["lines"], min(TAIL_CHARS, per_tail)) or "(no output)")
            out.append("```")
            out.append("")
        for e in terr[:10]:
            out.append(f"- torch `{e.get('part')}`: {str(e.get('error'))[:300]}")
        if len(terr) > 10:
            out.append(f"- … {len(terr) - 10} more torch error(s) in torch.json")
        if terr:
            out.append("")

    doc = by_name.get("doctor")
    if doc and doc["lines"]:
        out.append("<details><summary>skinengine doctor</summary>")
        out.append("")
        out.append("```")
        out.append(tail(doc["lines"]))
        out.append("```")
        out.append("")
        out.append("</details>")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=os.environ.get("OUT") or "/tmp/gpu-out",
                   help="the GPU check's output folder (default $OUT, else /tmp/gpu-out)")
    p.add_argument("--out", help="section file (default DIR/gpu_results_section.md)")
    a = p.parse_args(argv)
    text = section(a.dir)
    out = a.out or os.path.join(a.dir, "gpu_results_section.md")
    with open(out, "w") as f:
        f.write(text.rstrip("\n") + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
