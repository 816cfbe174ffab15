"""The shape of the package (issue 10, docs/architecture.md): layers, no import cycles, small rooms.

The layer contract itself is in pyproject.toml ([tool.importlinter], run by
``make imports``); this runs it with the tests too, and checks what import-linter
does not: that no module of syncd/ is part of an import cycle, and that no module is
over 500 lines or class over 300.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "syncd"

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
EXEMPT = PACKAGE / "testing" / "sandbox"
"""The marketplace sandboxes model whole platform APIs (every endpoint, its errors and
limits, as the platform documents them), for demos and tests; they are not syncd's
own code and read best one platform per module."""


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected parts of more than one module (or a
    module importing itself), by Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        part.append(member)
                        if member == node:
                            break
                    if len(part) > 1 or node in graph[node]:
                        cycles.append(sorted(part))
    return sorted(cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}
    assert _strongly_connected(graph) == [["a", "b", "c"], ["d"]]


def _cycles() -> list[list[str]]:
    g = grimp.build_graph("syncd", cache_dir=None)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    return _strongly_connected(graph)


def test_no_module_of_syncd_is_in_an_import_cycle() -> None:
    """Module-level imports, including those under TYPE_CHECKING and inside functions:
    a cycle there is a cycle in the design even when Python tolerates it."""
    assert _cycles() == []


def test_the_layer_contract_holds() -> None:
    """``lint-imports`` (pyproject.toml [tool.importlinter]) passes."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, (
        run.stdout
        + run.stderr
        + "\n(an ignore_imports entry that no longer matches: delete it from pyproject.toml)"
    )


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules, classes = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(EXEMPT):
            continue
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        modules[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                classes[f"{name}:{node.name}"] = node.end_lineno - node.lineno + 1
    return modules, classes


def _too_big() -> dict[str, int]:
    modules, classes = _sizes()
    big = {m: n for m, n in modules.items() if n > MAX_MODULE_LINES}
    big |= {c: n for c, n in classes.items() if n > MAX_CLASS_LINES}
    return big


def test_no_module_over_500_lines_and_no_class_over_300() -> None:
    assert _too_big() == {}


def test_the_size_check_sees_the_modules() -> None:
    modules, classes = _sizes()
    assert "syncd/core/policy.py" in modules
    assert "syncd/core/policy.py:Rules" in classes
    assert not any(m.startswith("syncd/testing/sandbox/") for m in modules)


@pytest.mark.parametrize("path", ["syncd/core", "syncd/core/errortable"])
def test_the_core_reads_no_clock(path: str) -> None:
    """Belt and braces for the forbidden contract: no clock calls by name in the core."""
    for module in sorted((ROOT / path).glob("*.py")):
        text = module.read_text()
        for clock in ("time.time(", "monotonic(", "datetime.now(", "perf_counter("):
            assert clock not in text, f"{module.relative_to(ROOT)} calls {clock}"
