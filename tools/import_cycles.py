#!/usr/bin/env python3
"""File-level import cycles and op -> backend imports in src/ (stdlib only).

Maps every `use crate::...` / `super::` path, and every inline `crate::a::b` path, in a Rust file
to the file that defines the module it names, builds the file graph and prints every cycle (strongly connected component of
more than one file), and every file under src/ops/ that imports src/backend/. Exit 1 if any.
Module declarations (`mod x;`) are not imports and are not edges.

    python3 tools/import_cycles.py [--src src]
"""
import argparse
import re
import sys
from pathlib import Path

USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
INLINE = re.compile(r"\bcrate(?:::[A-Za-z_][A-Za-z0-9_]*)+")


def module_of(path: Path, src: Path) -> list[str]:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_for(mod: list[str], files: dict) -> Path | None:
    # The longest prefix of the path that is a module file (the rest names items in it).
    for n in range(len(mod), -1, -1):
        f = files.get(tuple(mod[:n]))
        if f is not None:
            return f
    return None


def expand(tree: str) -> list[str]:
    """`a::{b, c::d}` -> ['a::b', 'a::c::d'] (nested braces too)."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    return [x for p in parts for x in expand(head + p)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, default=Path("src"))
    src = ap.parse_args().src
    files = {tuple(module_of(p, src)): p for p in src.rglob("*.rs")}
    graph = {p: set() for p in files.values()}
    for mod, path in files.items():
        text = re.sub(r"//[^\n]*", "", path.read_text())
        paths = [x for m in USE.finditer(text) for x in expand(m.group(1))]
        paths += [m.group(0) for m in INLINE.finditer(USE.sub("", text))]
        for item in paths:
            segs = item.split(" as ")[0].split("::")
            # The file's own module (a mod.rs file is its folder's module).
            here = list(mod)
            if segs[0] == "crate":
                target = segs[1:]
            elif segs[0] == "super":
                while segs and segs[0] == "super":
                    segs, here = segs[1:], here[:-1]
                target = here + segs
            elif segs[0] == "self":
                target = here + segs[1:]
            else:
                continue
            f = file_for(target, files)
            if f is not None and f != path:
                graph[path].add(f)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    bad = 0
    for comp in sccs:
        bad += 1
        print("cycle:", " <-> ".join(str(p) for p in comp))
    backend = src / "backend"
    for v, ws in graph.items():
        if (src / "ops") in v.parents:
            for w in ws:
                if backend in w.parents:
                    bad += 1
                    print(f"op imports the backend: {v} -> {w}")
    print(f"{len(graph)} files, {sum(len(w) for w in graph.values())} imports, {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
