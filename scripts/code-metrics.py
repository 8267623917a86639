#!/usr/bin/env python3
"""Code-shape figures for maintainers: lines per directory, the longest
functions, and which file of vmm/ calls functions defined in which other.

Usage: scripts/code-metrics.py [--top N] [--max-lines L]
  --max-lines L  exit 1 if a function in vmm/ or tools/ is longer than L lines
Functions are found the way the code is formatted (Linux style, the opening
brace of a function alone on a line in column 0).
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ["include", "src", "vmm", "tools", "guest", "tests", "bench", "fuzz"]
NAME_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def c_files(d):
    for base, _, files in os.walk(os.path.join(ROOT, d)):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(base, f)


def functions(path):
    """Yield (name, first line, length) of each function body in path."""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] == "{":
            j = i - 1
            while j > 0 and lines[j - 1].strip() and not lines[j - 1].startswith(("}", "*/", "#", " *")):
                j -= 1
            head = re.sub(r"/\*.*?\*/", "", " ".join(lines[j:i]))  # a one-line comment above
            names = [n for n in NAME_RE.findall(head) if n not in ("__attribute__", "sizeof")]
            start = i
            while i < len(lines) and lines[i] != "}":
                i += 1
            if names:
                yield names[0], start + 1, i - start + 1
        i += 1


def defs_and_calls(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    defs = set()
    for m in re.finditer(r"^(?!static)[a-z][^;{}()\n]*?\b([a-z_][a-z0-9_]*)\([^;]*?\)\s*\n\{",
                         text, flags=re.M):
        defs.add(m.group(1))
    defs.discard("main")  # every program has one; nobody calls it
    calls = set(NAME_RE.findall(text))
    return defs, calls


def find_cycle(edges):
    """One cycle of the call graph (a list of files, first == last), or None."""
    state = {}

    def visit(f, path):
        state[f] = 1
        for g in edges.get(f, []):
            if state.get(g) == 1:
                return path[path.index(g):] + [g]
            if g not in state:
                found = visit(g, path + [g])
                if found:
                    return found
        state[f] = 2
        return None

    for f in sorted(edges):
        if f not in state:
            found = visit(f, [f])
            if found:
                return found
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--max-lines", type=int, default=0)
    args = ap.parse_args()

    print("## Lines per directory (.c/.h)")
    for d in DIRS:
        n = sum(len(open(p, errors="replace").read().split("\n")) - 1 for p in c_files(d))
        print(f"  {d + '/':<10} {n:>6}")

    funcs = []
    for d in ("src", "vmm", "tools"):
        for p in c_files(d):
            for name, line, length in functions(p):
                funcs.append((length, os.path.relpath(p, ROOT), line, name))
    funcs.sort(reverse=True)
    print(f"\n## The {args.top} longest functions in src/, vmm/, tools/")
    for length, p, line, name in funcs[:args.top]:
        print(f"  {length:>4}  {name}  ({p}:{line})")
    over = [f for f in funcs if f[1].startswith(("vmm/", "tools/")) and f[0] > 100]
    print(f"\n  functions over 100 lines in vmm/ and tools/: {len(over)}")
    for length, p, line, name in over:
        print(f"    {length:>4}  {name}  ({p}:{line})")

    print("\n## vmm/: which file calls functions defined in which other file")
    files = [p for p in c_files("vmm") if p.endswith(".c")]
    info = {os.path.basename(p): defs_and_calls(p) for p in files}
    edges = {}
    for f, (_, calls) in info.items():
        edges[f] = sorted(g for g, (defs, _) in info.items()
                          if g != f and defs & calls)
        print(f"  {f:<14} -> {', '.join(edges[f]) or '-'}")
    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a]
                     if a in edges.get(b, [])})
    print("  two-way pairs: " + (", ".join(f"{a}<->{b}" for a, b in cycles) or "none"))
    cyc = find_cycle(edges)
    print("  cycles: " + (" -> ".join(cyc) if cyc else "none"))

    if args.max_lines:
        bad = [f for f in over if f[0] > args.max_lines]
        for length, p, line, name in bad:
            print(f"too long: {name} ({p}:{line}) {length} lines", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
