"""The package reads as a pipeline: no module of ``src/cadenza`` imports, however
indirectly, one that imports it back, and no two stage folders (``render/``,
``evaluate/``, ...) import each other. Read from the source with ``ast`` (imports inside
functions count too: a lazy import hides a circle, it does not remove it)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "cadenza"


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict) -> set[str]:
    """The modules of the package that ``name`` imports, with the packages whose
    ``__init__`` such an import runs (other than its own)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    out = set()
    for target in found:
        parts = target.split(".")
        for k in range(2, len(parts) + 1):
            step = ".".join(parts[:k])
            if step in known and step != name and not name.startswith(step + "."):
                out.add(step)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``edges`` (a path that ends where it starts), or None."""
    done, path = set(), []

    def visit(node) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if (found := visit(nxt)) is not None:
                return found
        path.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        if (found := visit(start)) is not None:
            return found
    return None


def stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and (ROOT / parts[1]).is_dir() else None


def test_no_module_circle():
    found = circle(graph())
    assert found is None, " -> ".join(found)


def test_no_circle_between_stage_folders():
    folders: dict[str, set[str]] = {}
    for name, deps in graph().items():
        for dep in deps:
            if stage(name) and stage(dep) and stage(name) != stage(dep):
                folders.setdefault(stage(name), set()).add(stage(dep))
    found = circle(folders)
    assert found is None, " -> ".join(found)


def test_the_notebooks_reproduction_is_reached_only_through_the_registries():
    """``cadenza/seed/`` is kept to compare with the notebook: the product names it only in the
    representation and model registries (as strings), so no module outside it imports it."""
    guests = {name: sorted(d for d in deps if d.startswith("cadenza.seed"))
              for name, deps in graph().items() if not name.startswith("cadenza.seed")}
    assert not {name: deps for name, deps in guests.items() if deps}


@pytest.mark.parametrize("edges, expect", [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
                                           ({"a": {"b"}, "b": {"c"}, "c": set()}, None)])
def test_the_circle_finder_finds_circles(edges, expect):
    assert circle(edges) == expect
