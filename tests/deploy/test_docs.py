"""The documents' tables equal what the code has (CLI commands, error codes)."""

from __future__ import annotations

import re
from pathlib import Path

import syncd.channels.base  # noqa: F401 - registers the channel error classes
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
