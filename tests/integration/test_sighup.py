"""SIGHUP re-reads the error table; a broken table keeps the old one and says why."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.kafka import ROOT, syncd_cmd, write_config


@pytest.mark.kafka
def test_sighup_reloads_the_table_and_keeps_it_when_broken(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    table = tmp_path / "error-table.toml"
    table.write_text((ROOT / "syncd" / "config" / "error-table.toml").read_text())
    path, _ = write_config(tmp_path, kafka_bootstrap, extra=f'[publish]\nerror_table = "{table}"')
    log = tmp_path / "syncd.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            syncd_cmd(path, "run", "--stage", "publish"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 60

        def wait_for(event: str, count: int = 1) -> None:
            while log.read_text().count(event) < count:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.1)

        wait_for('"partitions_assigned"')
        proc.send_signal(signal.SIGHUP)
        wait_for('"error_table_reloaded"')
        table.write_text("[[rows]]\nid = 'broken'\nclass = 'nonsense'\n")
        proc.send_signal(signal.SIGHUP)
        wait_for('"error_table_reload_failed"')
        assert proc.poll() is None  # still running, on the old table
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
