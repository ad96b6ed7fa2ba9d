"""The package's import structure: no import circle, and no import from a lower layer into a higher one.

The layer order is written down here, once, and docs/architecture.md shows the same table (checked below). Every
import counts, also those inside functions: a lazy import still makes the two modules depend on each other.

    python tests/test_import_layers.py     # prints the layers, their modules and the import counts
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "restore"

# lowest first; a module may import from its own layer or any layer below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("registry", "compat", "files", "devices", "assets")),
    ("parts", ("norms", "archs", "losses", "data", "metrics", "inference")),
    ("options", ("config", "builders", "schema")),
    ("engine", ("engine",)),
    ("evaluation", ("evaluation",)),
    ("tasks", ("tasks",)),
    ("hub", ("hub",)),
    ("train", ("train",)),
    ("study", ("study",)),
    ("demo", ("demo",)),
    ("cli", ("cli", "__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The restore modules ``name`` imports (``from restore.x import y`` counts as restore.x.y when y is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("restore") and target != name and target != "restore":
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(module: str) -> int:
    """Index in LAYERS of ``restore.<top>...``; a module that no layer names is an error of its own."""
    top = module.split(".")[1] if "." in module else ""
    for i, (_, tops) in enumerate(LAYERS):
        if top in tops:
            return i
    raise KeyError(module)


def find_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    unplaced = []
    for name in all_modules():
        if name == "restore":
            continue
        try:
            layer_of(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"modules in no layer (add them to LAYERS and docs/architecture.md): {unplaced}"


def test_no_import_runs_up_a_layer():
    g = graph()
    upward = [f"{a} (layer {LAYERS[layer_of(a)][0]}) imports {b} (layer {LAYERS[layer_of(b)][0]})"
              for a, targets in g.items() if a != "restore" for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_no_import_circle():
    cycles = find_cycles(graph())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_finds_what_it_should():
    """The checks on a made-up graph: a circle and an upward import are found."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("restore.cli") > layer_of("restore.train") > layer_of("restore.engine.trainer") \
        > layer_of("restore.files")


def test_docs_show_the_same_layers():
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`?(\w+)`?\s*\|([^|]*)\|", text, flags=re.M)
    documented = [(name, tuple(re.findall(r"`([\w_]+)[/`]", mods))) for _, name, mods in rows]
    assert documented == [(name, tops) for name, tops in LAYERS], \
        "docs/architecture.md's layer table differs from tests/test_import_layers.py's LAYERS"


def main() -> int:
    g = graph()
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for a, targets in g.items():
        if a == "restore":
            continue
        for b in targets:
            counts[(layer_of(a), layer_of(b))] += 1
    print(f"{len(g)} modules, {sum(len(t) for t in g.values())} imports between them")
    for i, (name, tops) in enumerate(LAYERS):
        mods = [m for m in g if m != "restore" and layer_of(m) == i]
        below = sum(n for (a, b), n in counts.items() if a == i and b < i)
        same = counts[(i, i)]
        print(f"{i:>2} {name:<10} {len(mods):>3} modules  imports: {same:>3} within, {below:>3} from below  "
              f"({', '.join(tops)})")
    up = sum(n for (a, b), n in counts.items() if b > a)
    print(f"upward imports: {up}; import circles: {len(find_cycles(g))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
