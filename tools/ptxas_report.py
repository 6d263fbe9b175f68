#!/usr/bin/env python3
"""Register / spill report for PTX files, from `ptxas -v` (stdlib only, no GPU needed).

    ptxas_report.py --ptxas PATH --ptx-dir DIR --arch sm_80 --arch sm_90 [--hot REGEX]...
                    [--markdown FILE] [--jobs N] [--ptxas-arg ARG]...

For every DIR/*.ptx and every --arch it runs `ptxas -arch=ARCH -v -o /dev/null FILE` and prints
one line per (arch, file, function): registers, spill stores/loads, stack frame, static shared
memory, constant memory (cmem banks; ptxas prints these for sm_80 but not for sm_90) and barriers.
Non-entry functions that ptxas kept out of line (`__noinline__`, recursion) get a line with
kind "func"; ptxas reports no registers for them.

Exit status: 0 all good; 1 if ptxas failed on any file, if its output could not be matched
with the PTX's .entry list, or if a "hot" function spills (nonzero spill stores or loads);
2 on bad usage. --hot REGEX (re.search on the name as ptxas prints it, i.e. mangled unless
extern "C"; repeatable) selects the hot functions; without --hot every function is hot.

--ptxas defaults to $SKINENGINE_PTXAS (set by `eval "$(tools/cuda_tools.sh)"`).

PTX assembles only for archs >= its `.target`: PTX made with NVRTC for compute_90 is rejected by
`ptxas -arch=sm_80`. Generate the PTX for the lowest arch you want to report on.
Dynamic shared memory (`extern __shared__`) is a launch parameter and not part of "smem".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

RE_COMPILING = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
RE_PROPS = re.compile(r"Function properties for (\S+)")
RE_FRAME = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
)
RE_USED = re.compile(r"Used (\d+) registers")
RE_BARRIERS = re.compile(r"used (\d+) barriers")
RE_SMEM = re.compile(r"(\d+) bytes smem")
RE_LMEM = re.compile(r"(\d+) bytes lmem")  # older ptxas versions
RE_CMEM = re.compile(r"(\d+) bytes cmem\[(\d+)\]")
RE_CUMSTACK = re.compile(r"(\d+) bytes cumulative stack size")
RE_PTX_ENTRY = re.compile(r"^\s*(?:\.visible\s+|\.weak\s+)?\.entry\s+([\w$.]+)", re.M)
RE_PTX_TARGET = re.compile(r"^\s*\.target\s+(sm_\d+)", re.M)


@dataclass
class Func:
    name: str
    kind: str = "func"  # "entry" or "func"
    registers: int | None = None
    stack: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    smem: int = 0
    lmem: int = 0
    cmem: dict[int, int] = field(default_factory=dict)
    barriers: int | None = None
    cumulative_stack: int | None = None

    def spills(self) -> bool:
        return bool(self.spill_stores) or bool(self.spill_loads)


@dataclass
class Result:
    arch: str
    file: Path
    returncode: int
    output: str
    funcs: list[Func]
    problems: list[str]  # ptxas failure / parse mismatch


def sm_number(arch: str) -> int | None:
    m = re.match(r"(?:sm|compute)_(\d+)", arch)
    return int(m.group(1)) if m else None


def parse_ptxas(output: str) -> list[Func]:
    funcs: dict[str, Func] = {}
    entry: Func | None = None  # last "Compiling entry function"
    props: Func | None = None  # last "Function properties for"

    def get(name: str) -> Func:
        if name not in funcs:
            funcs[name] = Func(name)
        return funcs[name]

    for line in output.splitlines():
        if m := RE_COMPILING.search(line):
            entry = get(m.group(1))
            entry.kind = "entry"
            props = None
        elif m := RE_PROPS.search(line):
            props = get(m.group(1))
        elif m := RE_FRAME.search(line):
            if props is not None:
                props.stack, props.spill_stores, props.spill_loads = map(int, m.groups())
        elif m := RE_USED.search(line):
            if entry is None:
                continue
            entry.registers = int(m.group(1))
            if b := RE_BARRIERS.search(line):
                entry.barriers = int(b.group(1))
            if s := RE_SMEM.search(line):
                entry.smem = int(s.group(1))
            if lm := RE_LMEM.search(line):
                entry.lmem = int(lm.group(1))
            if c := RE_CUMSTACK.search(line):
                entry.cumulative_stack = int(c.group(1))
            for size, bank in RE_CMEM.findall(line):
                entry.cmem[int(bank)] = int(size)
    return list(funcs.values())


def run_one(ptxas: str, arch: str, ptx: Path, extra: list[str]) -> Result:
    cmd = [ptxas, f"-arch={arch}", "-v", *extra, "-o", os.devnull, str(ptx)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError as e:
        return Result(arch, ptx, -1, str(e), [], [f"cannot run {ptxas}: {e}"])
    output = proc.stdout + proc.stderr  # ptxas prints its "info" lines on stderr
    problems: list[str] = []
    funcs = parse_ptxas(output) if proc.returncode == 0 else []
    text = ptx.read_text(errors="replace")
    if proc.returncode != 0:
        msg = f"ptxas exited with {proc.returncode}"
        t = RE_PTX_TARGET.search(text)
        want, have = sm_number(arch), sm_number(t.group(1)) if t else None
        if want is not None and have is not None and want < have and ".target" in output:
            msg += (
                f" (PTX .target is {t.group(1)}, above -arch={arch}: "
                f"generate the PTX for the lowest arch, e.g. compute_{want})"
            )
        problems.append(msg)
    else:
        # Guard against a silently vacuous report if ptxas' output format changes.
        expected = set(RE_PTX_ENTRY.findall(text))
        got = {f.name for f in funcs if f.kind == "entry"}
        if expected != got:
            problems.append(
                "ptxas -v output does not match the PTX .entry list "
                f"(missing {sorted(expected - got)}, unexpected {sorted(got - expected)})"
            )
        for f in funcs:
            if f.spill_stores is None or (f.kind == "entry" and f.registers is None):
                problems.append(f"could not parse ptxas -v statistics for {f.name}")
    return Result(arch, ptx, proc.returncode, output, funcs, problems)


def fmt(v: int | None) -> str:
    return "-" if v is None else str(v)


def fmt_cmem(c: dict[int, int]) -> str:
    return ",".join(f"{size}[{bank}]" for bank, size in sorted(c.items())) or "-"


COLUMNS = ["arch", "file", "kind", "regs", "spill_st", "spill_ld", "stack", "smem", "cmem",
           "bar", "hot", "function"]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    ap.add_argument("--ptxas", default=os.environ.get("SKINENGINE_PTXAS"),
                    help="ptxas executable (default: $SKINENGINE_PTXAS)")
    ap.add_argument("--ptx-dir", required=True, type=Path, help="directory holding *.ptx")
    ap.add_argument("--arch", action="append", required=True,
                    help="target, e.g. sm_80 (repeatable)")
    ap.add_argument("--hot", action="append", default=[], metavar="REGEX",
                    help="functions that must not spill (repeatable; default: all)")
    ap.add_argument("--markdown", type=Path, metavar="FILE",
                    help="also write the table as markdown")
    ap.add_argument("--ptxas-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for ptxas, e.g. --ptxas-arg=-O3 (repeatable)")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    if not args.ptxas:
        ap.error("--ptxas not given and $SKINENGINE_PTXAS is not set")
    try:
        hot = [re.compile(h) for h in args.hot]
    except re.error as e:
        ap.error(f"bad --hot regex: {e}")
    if not args.ptx_dir.is_dir():
        ap.error(f"--ptx-dir {args.ptx_dir} is not a directory")
    files = sorted(args.ptx_dir.glob("*.ptx"))
    if not files:
        ap.error(f"no *.ptx files in {args.ptx_dir}")

    jobs = [(a, f) for a in args.arch for f in files]
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as ex:
        results = list(ex.map(lambda j: run_one(args.ptxas, j[0], j[1], args.ptxas_arg), jobs))

    def is_hot(name: str) -> bool:
        return not hot or any(h.search(name) for h in hot)

    rows: list[list[str]] = []
    failures: list[str] = []
    spills: list[str] = []
    for r in results:
        for p in r.problems:
            failures.append(f"{r.arch} {r.file.name}: {p}")
        if r.problems:
            print(f"--- ptxas output for {r.arch} {r.file.name}:", file=sys.stderr)
            print(r.output.rstrip(), file=sys.stderr)
        for line in r.output.splitlines():
            if "ptxas warning" in line and r.returncode == 0:
                print(f"{r.arch} {r.file.name}: {line.strip()}", file=sys.stderr)
        for f in sorted(r.funcs, key=lambda f: (f.kind != "entry", f.name)):
            h = is_hot(f.name)
            if h and f.spills():
                spills.append(
                    f"{r.arch} {r.file.name} {f.name}: {f.spill_stores} bytes spill stores, "
                    f"{f.spill_loads} bytes spill loads"
                )
            rows.append([
                r.arch, r.file.name, f.kind, fmt(f.registers), fmt(f.spill_stores),
                fmt(f.spill_loads), fmt(f.stack), str(f.smem), fmt_cmem(f.cmem),
                fmt(f.barriers), ("SPILL" if f.spills() else "yes") if h else "no", f.name,
            ])

    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())

    for s in spills:
        print(f"SPILL in hot function: {s}", file=sys.stderr)
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    n_funcs = len(rows)
    print(f"{len(files)} file(s) x {len(args.arch)} arch(s), {n_funcs} function row(s), "
          f"{len(spills)} hot spill(s), {len(failures)} failure(s)", file=sys.stderr)

    if args.markdown:
        md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        md += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in rows]
        if spills or failures:
            md.append("")
            md += [f"- **SPILL** in hot function: `{s}`" for s in spills]
            md += [f"- **FAILED**: {f}" for f in failures]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(md) + "\n")

    return 1 if (spills or failures) else 0


if __name__ == "__main__":
    sys.exit(main())
