#!/usr/bin/env python3
"""Finds import circles between the source files of each crate.

A crate's modules form a tree (`mod` declarations). A module may use its
ancestors (`super::`, `crate::` items) and its own descendants; what must
not happen is a circle between siblings: `a` uses `b` (anything below it)
and `b` uses `a`, at any level of the tree. Paths are resolved through
`crate::`, `super::`, `self::`, a child's name, and the crate root's (or a
module's) `pub use` re-exports, so `use crate::Tenants` counts as a use of
the module that defines `Tenants`.

    scripts/import-circles.py [CRATE_DIR ...]   # default: every crate here

Exit 0 when no circle is found, 1 otherwise (each circle printed).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def crate_dirs():
    dirs = [ROOT] + sorted(
        os.path.join(ROOT, "crates", d) for d in os.listdir(os.path.join(ROOT, "crates"))
    )
    return [d for d in dirs if os.path.isdir(os.path.join(d, "src"))]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        # drop // comments (naive about strings, good enough for paths)
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def module_files(src):
    """{module path tuple: file} for every module file of the crate."""
    mods = {}
    roots = [f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))]

    def walk(path, file, dirpath):
        mods[path] = file
        text = strip_comments(open(file, encoding="utf-8").read())
        for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
            name = m.group(1)
            for cand in (os.path.join(dirpath, name + ".rs"), os.path.join(dirpath, name, "mod.rs")):
                if os.path.exists(cand):
                    walk(path + (name,), cand, os.path.join(dirpath, name))
                    break

    for r in roots:
        walk((), os.path.join(src, r), src)
        break  # one tree per crate (lib.rs, else main.rs)
    if roots == ["lib.rs", "main.rs"] or (len(roots) == 2):
        # the binary's own modules (main.rs), as a second tree under "bin"
        sub = {}
        saved = dict(mods)
        mods.clear()
        walk((), os.path.join(src, "main.rs"), src)
        for k, v in mods.items():
            if v.endswith("main.rs") or v not in saved.values():
                sub[("<bin>",) + k] = v
        mods.clear()
        mods.update(saved)
        mods.update(sub)
    return mods


USE_RE = re.compile(r"\buse\s+([^;]+);", re.S)
PATH_RE = re.compile(r"\b(crate|super|self)((?:::\w+)+)")


def expand_use(tree):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d']"""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def rec(prefix, t):
        if t.startswith("{") and t.endswith("}"):
            depth, cur = 0, ""
            for ch in t[1:-1] + ",":
                if ch == "," and depth == 0:
                    if cur:
                        rec(prefix, cur)
                    cur = ""
                    continue
                depth += ch == "{"
                depth -= ch == "}"
                cur += ch
            return
        i = t.find("::{")
        if i >= 0:
            rec(prefix + t[:i].split("::"), t[i + 2:])
            return
        name = t.split(" as ")[0] if " as " in t else re.split(r"\bas\b", t)[0]
        out.append(prefix + [p for p in name.split("::") if p])

    rec([], tree)
    return out


def analyse(crate):
    src = os.path.join(crate, "src")
    mods = module_files(src)
    texts = {p: strip_comments(open(f, encoding="utf-8").read()) for p, f in mods.items()}
    base = lambda p: p[:1] if p[:1] == ("<bin>",) else ()
    # re-exports: (module, name) -> module path it comes from
    reexp = {}
    for p, t in texts.items():
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", t, re.S):
            for parts in expand_use(m.group(1)):
                target = resolve(p, parts[:-1], mods, base(p), {}, texts)
                if target is not None:
                    reexp[(p, parts[-1])] = target

    edges = set()
    for p, t in texts.items():
        refs = []
        for m in USE_RE.finditer(t):
            refs += expand_use(m.group(1))
        for m in PATH_RE.finditer(t):
            refs.append([m.group(1)] + [x for x in m.group(2).split("::") if x])
        for parts in refs:
            target = resolve(p, parts, mods, base(p), reexp, texts)
            if target is not None and target != p:
                edges.add((p, target))
    return mods, edges


def resolve(cur, parts, mods, root, reexp, texts):
    """The module a path names (the deepest module prefix; through re-exports)."""
    if not parts:
        return None
    if parts[0] == "crate":
        at, rest = root, parts[1:]
    elif parts[0] == "super":
        at, rest = cur, parts
        while rest and rest[0] == "super":
            at, rest = at[:-1], rest[1:]
    elif parts[0] == "self":
        at, rest = cur, parts[1:]
    elif cur + (parts[0],) in mods:
        at, rest = cur, parts
    else:
        return None  # an external crate or a local name
    for i, name in enumerate(rest):
        if at + (name,) in mods:
            at = at + (name,)
            continue
        nxt = reexp.get((at, name))
        if nxt is not None and nxt != at:
            return nxt
        break
    return at


def is_ancestor(a, b):
    return len(a) < len(b) and b[: len(a)] == a


def sibling_edges(edges):
    out = set()
    for u, v in edges:
        if is_ancestor(u, v) or is_ancestor(v, u):
            continue
        n = 0
        while n < min(len(u), len(v)) and u[n] == v[n]:
            n += 1
        out.add((u[: n + 1], v[: n + 1], u, v))
    return out


def cycles(sib):
    graph = {}
    why = {}
    for a, b, u, v in sib:
        graph.setdefault(a, set()).add(b)
        why.setdefault((a, b), (u, v))
    # Tarjan's strongly connected components
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
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
                comps.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            strong(v)
    return comps, graph, why


def main():
    sys.setrecursionlimit(10000)
    crates = sys.argv[1:] or crate_dirs()
    found = 0
    files = 0
    for crate in crates:
        mods, edges = analyse(crate)
        files += len(mods)
        comps, graph, why = cycles(sibling_edges(edges))
        name = os.path.relpath(crate, ROOT)
        for comp in comps:
            found += 1
            print(f"circle in {name}: " + " <-> ".join("::".join(c) or "crate" for c in comp))
            for a in comp:
                for b in sorted(graph.get(a, ())):
                    if b in comp:
                        u, v = why[(a, b)]
                        print(f"    {mods[u]} uses {mods[v]}".replace(ROOT + "/", ""))
    if found:
        print(f"{found} import circle(s) in {files} source files")
        return 1
    print(f"no import circle in {files} source files of {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
