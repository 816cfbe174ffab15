"""The documents' tables equal what the code has (CLI commands, error codes, the module map)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from syncd import cli, errors

ROOT = Path(__file__).resolve().parents[2]


def _table_column(text: str, header: str) -> list[str]:
    """First-column cells (backticks stripped) of the markdown table whose header starts so."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header}"))
    cells = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells.append(line.split("|")[1].strip().strip("`"))
    return cells


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


def test_readme_command_table_equals_the_cli() -> None:
    documented = [
        re.sub(r"^syncd ", "", c).split()[0]
        for c in _table_column((ROOT / "README.md").read_text(), "command")
    ]
    parser_commands = list(cli.build_parser()._subparsers._group_actions[0].choices)
    assert documented == list(cli.COMMANDS) == parser_commands


def test_cli_docstring_table_equals_the_cli() -> None:
    assert cli.__doc__ is not None
    documented = [c.split()[1] for c in _table_column(cli.__doc__.replace("``", "`"), "command")]
    assert documented == list(cli.COMMANDS)


def test_error_code_table_equals_the_exception_tree() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    documented = _table_column(text, "code")
    classes = _subclasses(errors.SyncdError)
    assert sorted(documented) == sorted(c.code for c in classes)  # type: ignore[attr-defined]
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)` \| `(\w+)` \| (yes|no) \|", line)
        if m:
            cls = next(c for c in classes if c.__name__ == m.group(2))
            assert cls.code == m.group(1)  # type: ignore[attr-defined]
            assert cls.retriable == (m.group(3) == "yes")  # type: ignore[attr-defined]


def test_metrics_table_equals_the_registry() -> None:
    """docs/metrics.md lists every family the registry exposes, with its type and labels."""
    from syncd.obs import metrics

    documented = {}
    lines = (ROOT / "docs" / "metrics.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| name"))
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name, typ, labels = (c.strip() for c in line.split("|")[1:4])
        documented[name.strip("`")] = (typ, tuple(x.strip(" `") for x in labels.split(",") if x))
    exposed = {}
    for fam in metrics.REGISTRY.collect():
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        sampled = {k for s in fam.samples for k in s.labels if k != "le"}
        exposed[name] = (fam.type, sampled)
    assert sorted(documented) == sorted(exposed)
    own = {f.name: (f.type, f.labels) for f in metrics.FAMILIES}
    for name, (typ, labels) in documented.items():
        assert typ == exposed[name][0], name
        expected = set(own[name][1]) if name in own else exposed[name][1]
        assert set(labels) == expected, name


# -- docs/architecture.md: the module map equals the tree -----------------------------------


def _module_map() -> dict[str, str]:
    """The rows of the module map in docs/architecture.md: path -> what it owns."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("\n## Module map\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(syncd/[^`]+\.py)` \| (.+) \|$", line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} is mapped twice"
            rows[m.group(1)] = m.group(2).strip()
    return rows


def test_module_map_equals_the_tree() -> None:
    """Every module of syncd/ has one row in the map, and every row is a module."""
    tree = {p.relative_to(ROOT).as_posix() for p in (ROOT / "syncd").rglob("*.py")}
    mapped = _module_map()
    missing = sorted(tree - set(mapped))
    suggestions = []
    for path in missing:
        doc = ast.get_docstring(ast.parse((ROOT / path).read_text())) or ""
        first = doc.strip().splitlines()[0] if doc.strip() else "(what it owns)"
        suggestions.append(f"| `{path}` | {first} |")
    assert not missing, "docs/architecture.md lacks these rows:\n" + "\n".join(suggestions)
    assert not sorted(set(mapped) - tree), "docs/architecture.md maps modules that are gone"
    assert all(owns and owns != "(what it owns)" for owns in mapped.values())


def test_the_homes_named_in_the_architecture_exist() -> None:
    """Each "where does X live" answer names a module that exists (and is mapped)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("\n## From the tree alone\n", 1)[1].split("\n## ", 1)[0]
    homes = re.findall(r"^\| [^|]+ \| `(syncd/[^`]+)`", section, flags=re.M)
    assert len(homes) >= 7
    mapped = _module_map()
    for home in homes:
        assert (ROOT / home).is_file(), home
        assert home in mapped, home
