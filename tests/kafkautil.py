"""Test utilities around the real broker: configs with unique topics, running syncd."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from dev.kafkaio import config_head, create_inputs, latest, produce, read_topic
from syncd import config
from syncd.kafka.partitioning import partition_for

__all__ = ["create_inputs", "latest", "produce", "read_topic"]

ROOT = Path(__file__).resolve().parent.parent


def write_config(
    tmp: Path, bootstrap: str, *, prefix: str | None = None, extra: str = "", partitions: int = 3
) -> tuple[Path, config.Config]:
    """A config whose topics and group are unique to this test."""
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}"
    text = (
        config_head(bootstrap, prefix, input_partitions=partitions)
        + f"""[compute]
batch_max_records = 500
[policy]
safety = "velocity"
safety_units = 1
react_minutes = 20
[channels."wayfair:us".policy]
safety = "percent"
safety_percent = 10
{extra}
"""
    )
    path = tmp / f"{prefix}.toml"
    path.write_text(text)
    return path, config.load(path)


def with_group(
    cfg_path: Path, tmp: Path, group: str, internal: str | None = None
) -> tuple[Path, config.Config]:
    """The same input topics, another consumer group and (if given) other internal topics."""
    text = cfg_path.read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("group_id"):
            line = f'group_id = "{group}"'
        if internal is not None and line.startswith("internal_prefix"):
            line = f'internal_prefix = "{internal}"'
        lines.append(line)
    path = tmp / f"{group}.toml"
    path.write_text("\n".join(lines))
    return path, config.load(path)


def syncd_cmd(cfg_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "syncd", "--config", str(cfg_path), *args]


def run_syncd(cfg_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        syncd_cmd(cfg_path, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )


def sku_partition(sku: str, n: int) -> int:
    return partition_for(sku, n)
