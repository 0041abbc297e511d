"""The package's layout: one sub-package per stage, no import cycles, no arrow pointing up a stage.

Run as a script (``python tests/test_layout.py``) to print the stage graph.
"""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "echotemporal"

#: Stages in data-flow order; a module may import only from its own stage or earlier ones.
#: "top" holds the entry points and the documented re-exports (cli, pipeline, pretrained).
STAGES = ("core", "io", "measure", "phantoms", "model", "training", "correct", "plotting", "outputs", "batch",
          "serve", "top")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """Package modules imported anywhere in ``path`` (module level, functions, TYPE_CHECKING blocks)."""
    found = set()
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(n for n in names if n in known and n != own and n != "echotemporal")
    return found


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else "top"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) for name, path in known.items()}


def upward_arrows(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    rank = {s: i for i, s in enumerate(STAGES)}
    return sorted((a, b) for a, targets in edges.items() for b in targets if rank[stage(b)] > rank[stage(a)])


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as exc:
        return [tuple(exc.args[1])]
    return []


def test_every_module_belongs_to_a_known_stage():
    assert {stage(m) for m in modules()} <= set(STAGES)


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_upward_arrow():
    assert upward_arrows(graph()) == []


def test_detects_a_cycle_and_an_upward_arrow():
    edges = {"echotemporal.core.a": {"echotemporal.measure.b"}, "echotemporal.measure.b": {"echotemporal.core.a"}}
    assert cycles(edges) and upward_arrows(edges) == [("echotemporal.core.a", "echotemporal.measure.b")]


def main() -> None:
    edges = graph()
    between = defaultdict(int)
    for a, targets in edges.items():
        for b in targets:
            if stage(a) != stage(b):
                between[stage(a), stage(b)] += 1
    for (a, b), n in sorted(between.items(), key=lambda kv: (STAGES.index(kv[0][0]), STAGES.index(kv[0][1]))):
        print(f"{a:>9} -> {b:<9} {n} imports")
    print(f"modules {len(edges)}, cycles {len(cycles(edges))}, upward arrows {len(upward_arrows(edges))}")
    for arrow in upward_arrows(edges):
        print("  up:", *arrow)
    for cycle in cycles(edges):
        print("  cycle:", " -> ".join(cycle))


if __name__ == "__main__":
    main()
