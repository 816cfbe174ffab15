"""The systemd notify protocol against a datagram socket the test owns: the Notifier itself
(path and abstract sockets, no-op without NOTIFY_SOCKET, WATCHDOG_PID), then ``syncd run``:
READY=1 only once ready, WATCHDOG=1 repeating, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.obs.notify import Notifier
from tests.fixtures.daemon import Daemon
from tests.fixtures.kafka import write_config


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(0.05)
    yield sock, path
    sock.close()


def messages(sock: socket.socket) -> list[dict[str, str]]:
    """Every datagram waiting on the socket, each as its KEY=value fields."""
    out = []
    while True:
        try:
            data = sock.recv(4096)
        except (TimeoutError, BlockingIOError):
            return out
        out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


def test_notifier_sends_to_a_path_and_to_an_abstract_socket(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.send(READY="1", STATUS="ready")
    assert messages(sock) == [{"READY": "1", "STATUS": "ready"}]
    n.close()

    name = f"syncd-test-{uuid.uuid4().hex}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + name)
    abstract.settimeout(1)
    to_abstract = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
    try:
        assert to_abstract.send(STOPPING="1")
        assert abstract.recv(100) == b"STOPPING=1"
    finally:
        to_abstract.close()
        abstract.close()


def test_without_notify_socket_nothing_is_sent_and_watchdog_pid_is_honoured() -> None:
    assert Notifier.from_env({}).send(READY="1") is False
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "3000000"}
    assert Notifier.from_env(env).watchdog_s == 1.5
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 1.5
    assert Notifier.from_env({**env, "WATCHDOG_PID": "1"}).watchdog_s is None
    nowhere = Notifier.from_env({**env, "NOTIFY_SOCKET": "/nonexistent"})
    try:
        assert nowhere.send(READY="1") is False
    finally:
        nowhere.close()


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_daemon_sends_ready_after_restore_then_watchdog_then_stopping(
    kafka_bootstrap: str,
    tmp_path: Path,
    listener: tuple[socket.socket, str],
    daemons: list[Daemon],
) -> None:
    sock, path = listener
    cfg_path, _ = write_config(tmp_path, kafka_bootstrap, extra="[admin]\nport = 0\n")
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"}  # WATCHDOG=1 every 0.15 s
    d = Daemon(cfg_path, tmp_path / "syncd.log", env=env)
    daemons.append(d)
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + 60
    while not any(m.get("READY") == "1" for m in got):
        assert time.monotonic() < deadline, d.log.read_text()[-3000:]
        assert d.proc.poll() is None, d.log.read_text()[-3000:]
        got += messages(sock)
    # READY came only once ready: the daemon says so, and restored before it
    assert d.get("/readyz")[0] == 200
    assert [m for m in got if m != {"WATCHDOG": "1"}] == [{"READY": "1", "STATUS": "ready"}]
    lines = d.log.read_text().splitlines()
    ready_at = next(i for i, line in enumerate(lines) if '"notify_ready"' in line)
    for restored in ('"state_restored"', '"acked_restored"'):
        assert any(restored in line for line in lines[:ready_at]), restored

    time.sleep(1.0)
    dogs = [m for m in messages(sock) if m == {"WATCHDOG": "1"}]
    assert len(dogs) >= 3, dogs

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    rest = messages(sock)
    assert {"STOPPING": "1", "STATUS": "stopping"} in rest, rest
