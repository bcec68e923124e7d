#!/usr/bin/env python3
"""Finds import cycles between the files of each crate (ARCHITECTURE.md).

Within each module folder (a crate's src/, or a folder module), the nodes
are its child modules, each a file or a folder, and A -> B when code in A
names B through `crate::` or `super::` paths. A cycle means two parts of a
crate that cannot be understood, or moved, one without the other (as
infer-nostd's engine <-> exec and the trainer's error <-> deploy once were).
The module root itself (lib.rs, main.rs, mod.rs) is the table of contents
and is not a node: its re-exports are not dependencies of its children.

Usage: python3 scripts/import-cycles.py [crate-src-dir ...]
With no arguments, every src/ of the workspace and the firmware.
Exit status 1 and the cycles on stdout when there is one.
"""
import os
import re
import sys

ROOTS = ("lib.rs", "main.rs", "mod.rs")
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules(src):
    """Maps each module path (a tuple) to its file."""
    found = {}
    for dirpath, _, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        for f in files:
            if not f.endswith(".rs"):
                continue
            if f in ROOTS:
                # main.rs/lib.rs at the top, mod.rs in a folder: the folder.
                found.setdefault(parts, os.path.join(dirpath, f))
            else:
                found[parts + (f[:-3],)] = os.path.join(dirpath, f)
    return found


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def first_segments(text, at):
    """The first path segments after `crate::`/`super::` at `at`: one name,
    or each name of a `{a::x, b}` group."""
    m = re.match(r"\s*(" + IDENT + r")", text[at:])
    if m:
        return [m.group(1)]
    if not text[at:].lstrip().startswith("{"):
        return []
    depth, start, names, i = 0, None, [], at + text[at:].index("{")
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
            if depth == 1:
                start = i + 1
        elif c in ",}" and depth == 1:
            m = re.match(r"\s*(" + IDENT + r")", text[start:i])
            if m:
                names.append(m.group(1))
            start = i + 1
            if c == "}":
                break
        elif c == "}":
            depth -= 1
        i += 1
    return names


def references(path, own):
    """Module paths (tuples) the file at module path `own` names."""
    text = strip_comments(open(path, encoding="utf-8").read())
    is_root = os.path.basename(path) in ROOTS
    # `super` in a plain file x.rs is x's parent; in mod.rs, the folder's.
    parent = own if is_root else own[:-1]
    refs = set()
    for m in re.finditer(r"\b(crate::|(?:super::)+)", text):
        kind = m.group(1)
        if kind == "crate::":
            base = ()
        else:
            ups = kind.count("super")
            base = parent[: max(len(parent) - (ups - 1), 0)]
        at = m.end()
        for name in first_segments(text, at):
            if name in ("self", "super", "crate"):
                continue
            refs.add(base + (name,))
    return refs


def cycles_in(src):
    mods = modules(src)
    edges = {}
    for own, path in mods.items():
        is_root = os.path.basename(path) in ROOTS
        for ref in references(path, own):
            # The node at each level: A and B are children of the same folder.
            for depth in range(len(ref)):
                a = own[: depth + 1]
                b = ref[: depth + 1]
                if own[:depth] != ref[:depth] or a == b:
                    continue
                if len(own) <= depth or (is_root and len(own) == depth):
                    break
                if b in mods or any(k[: depth + 1] == b for k in mods):
                    edges.setdefault(a, set()).add(b)
                break
    found, seen = [], set()

    def walk(node, stack):
        for nxt in sorted(edges.get(node, ())):
            if nxt in stack:
                cyc = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc)
            elif len(stack) < 12:
                walk(nxt, stack + [nxt])

    for n in sorted(edges):
        walk(n, [n])
    return found


def default_srcs(top):
    out = []
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("target", ".git", ".tools", "node_modules")]
        if os.path.basename(dirpath) == "src" and "Cargo.toml" in os.listdir(os.path.dirname(dirpath)):
            out.append(dirpath)
    return sorted(out)


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    srcs = sys.argv[1:] or default_srcs(top)
    bad = 0
    for src in srcs:
        for cyc in cycles_in(src):
            bad += 1
            name = os.path.relpath(src, top)
            print(f"{name}: " + " -> ".join("::".join(n) for n in cyc))
    print(f"import cycles: {bad} in {len(srcs)} crates")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
