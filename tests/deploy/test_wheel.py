"""The wheel ships what the daemon reads: built from the tree, installed in a fresh
virtualenv, ``syncd check-config`` and ``syncd run`` work from another folder, with the
error table, the example configuration and the input schemas read from the installed
package (not from the source tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dev import sample
from tests.fixtures.kafka import ROOT, create_inputs, latest, produce, write_config

pytestmark = pytest.mark.kafka

_SKIP = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis", "target"
)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A virtualenv with the syncd wheel built from this tree; its bin dir and an
    environment that does not see the source tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    for name in ("syncd", "config", "pyproject.toml", "README.md"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=_SKIP)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SYNCD_CONFIG")}
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], tmp, env
    )
    [wheel] = wheels.glob("syncd-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp, env)
    bin_dir = venv / "bin"
    _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        tmp,
        env,
    )
    return bin_dir, {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


def test_the_package_data_comes_from_the_installed_wheel(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_dir, env = installed
    probe = (
        "import syncd, syncd.config as c, syncd.contract as k;"
        "from syncd.config import error_table as t;"
        "from importlib import resources;"
        "print(syncd.__file__);"
        "print(len(t.load('').rows));"
        "print(c.example_text().splitlines()[0]);"
        "print(resources.files('syncd.contract') / 'schemas')"
    )
    out = _run([str(bin_dir / "python"), "-c", probe], tmp_path, env).stdout.splitlines()
    venv = bin_dir.parent.resolve()
    assert Path(out[0]).resolve().is_relative_to(venv), out[0]
    assert int(out[1]) > 10  # the shipped error table's rows
    assert out[2].startswith("# syncd example configuration")
    assert Path(out[3]).resolve().is_relative_to(venv)
    assert any(Path(out[3]).glob("*.json"))


async def test_check_config_and_run_from_another_folder(
    installed: tuple[Path, dict[str, str]], kafka_bootstrap: str, tmp_path: Path
) -> None:
    bin_dir, env = installed
    path, cfg = write_config(tmp_path, kafka_bootstrap)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    syncd = str(bin_dir / "syncd")
    done = _run([syncd, "--config", str(path), "check-config"], elsewhere, env)
    assert done.stdout.startswith(f"ok: {path}")
    example = elsewhere / "example.toml"
    example.write_text(
        _run([str(bin_dir / "python"), "-c", "import syncd.config as c; print(c.example_text())"],
             elsewhere, env).stdout
    )  # fmt: skip
    _run([syncd, "--config", str(example), "check-config"], elsewhere, env)

    await create_inputs(cfg)
    await produce(cfg, sample.catalog(3) + list(sample.events(200, 3, seed=4)))
    _run([syncd, "--config", str(path), "run", "--until-caught-up"], elsewhere, env)
    desired = await latest(cfg, cfg.topics.desired)
    assert desired, "the installed daemon computed no desired quantity"
    assert not (elsewhere / "config").exists()
