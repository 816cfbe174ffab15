"""A real single-node Apache Kafka broker (KRaft) for development and tests, without Docker.

This module owns fetching the broker jars and running, checking and stopping a local broker.
It uses the standard library only, so it runs before the project is pip-installed.

The broker comes from Maven Central: ``dev/kafka/pom.xml`` resolves ``kafka_2.13`` and a log4j2
binding into one folder of jars (the Kafka version lives only in that pom's ``kafka.version``
property; this module reads it from there). The broker runs as ``java -cp 'jars/*' kafka.Kafka``
in combined broker+controller mode, listening on 127.0.0.1 only.

Command line::

    python dev/kafka.py jars                          # resolve jars into the cache (once)
    python dev/kafka.py start [--port N] [--dir DIR] [--heap 512m]
    python dev/kafka.py status --dir DIR
    python dev/kafka.py stop --dir DIR [--purge]

``start`` prints the bootstrap address ``127.0.0.1:PORT`` as the last line of stdout.

Library::

    from dev.kafka import ensure_jars, start
    broker = start()            # free port, fresh temp folder
    broker.bootstrap            # "127.0.0.1:PORT"
    broker.restart()            # same port and data
    broker.stop()

Files in the data folder: ``server.properties``, ``log4j2.properties``, ``data/`` (log.dirs),
``broker.log`` (the broker's own log), ``stdout.log`` (JVM output), ``pid``, ``bootstrap``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import hashlib
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
HOST = "127.0.0.1"
DEFAULT_HEAP = "512m"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
_MAVEN_NS = "{http://maven.apache.org/POM/4.0.0}"


class KafkaDevError(RuntimeError):
    """The local broker could not be resolved, started, checked or stopped."""


# --------------------------------------------------------------------------- jars


def kafka_version() -> str:
    """The broker version: the ``kafka.version`` property of dev/kafka/pom.xml."""
    root = ET.parse(POM).getroot()
    node = root.find(f"{_MAVEN_NS}properties/{_MAVEN_NS}kafka.version")
    if node is None or not (node.text or "").strip():
        raise KafkaDevError(f"no <kafka.version> property in {POM}")
    return (node.text or "").strip()


def default_cache_dir() -> Path:
    """``$SYNCD_KAFKA_CACHE`` if set, else ``~/.cache/syncd/kafka-<version>``."""
    env = os.environ.get("SYNCD_KAFKA_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "syncd" / f"kafka-{kafka_version()}"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Resolve the broker's runtime jars into ``cache_dir`` unless already there.

    Returns the folder holding the jars. The folder is filled in a temporary sibling and
    renamed into place, so a half-finished download is never taken for a complete one; it is
    resolved again when dev/kafka/pom.xml changes.
    """
    target = (cache_dir or default_cache_dir()).expanduser().resolve()
    digest = _pom_digest()

    def complete() -> bool:
        stamp = target / "pom.sha256"
        return stamp.is_file() and stamp.read_text().strip() == digest

    if complete():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaDevError("mvn is not on PATH: it is needed once to resolve the Kafka jars")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        cmd = [
            mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-Djars.dir={tmp}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip()
            raise KafkaDevError(f"maven could not resolve the Kafka jars:\n{out[-4000:]}")
        if not any(tmp.glob("kafka_2.13-*.jar")):
            raise KafkaDevError(f"maven finished but left no kafka_2.13 jar in {tmp}")
        (tmp / "pom.sha256").write_text(digest + "\n")
        if complete():  # another process finished first; theirs is as good as ours
            return target
        old: Path | None = None
        if target.exists():  # jars of an older pom
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            target.rename(old)
        try:
            tmp.rename(target)
        except OSError:
            if not complete():
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ------------------------------------------------------------------------ helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def new_cluster_id() -> str:
    """A random 22-character URL-safe base64 UUID, as ``kafka-storage random-uuid`` makes."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return text


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ClusterMetadata:
    """What a Metadata request tells about the cluster."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node id, host, port)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def fetch_metadata(port: int, timeout: float = 3.0) -> ClusterMetadata:
    """Send a raw Metadata v4 request (no topics) to 127.0.0.1:port and parse the brokers.

    v4 is served by 3.x and 4.x brokers alike (4.1.1 advertises Metadata v0-v13).
    Ready means: the broker answers, for the cluster id we formatted, and lists itself.
    """
    client_id = b"syncd-dev-kafka"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation: false
    request = header + body
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        data = _read_exact(sock, size)
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def take_str() -> str | None:
        nonlocal pos
        n = take(">h")
        if n < 0:
            return None
        text = data[pos : pos + n].decode()
        pos += n
        return text

    correlation_id = take(">i")
    if correlation_id != 1:
        raise ConnectionError(f"unexpected correlation id {correlation_id}")
    take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(take(">i")):
        node_id = take(">i")
        host = take_str() or ""
        broker_port = take(">i")
        take_str()  # rack
        brokers.append((node_id, host, broker_port))
    cluster_id = take_str()
    controller_id = take(">i")
    return ClusterMetadata(cluster_id, controller_id, tuple(brokers))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited already
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """True if pid is a live kafka.Kafka process run from data_dir (not a recycled pid)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # cannot tell (no /proc); trust the pid file
    args = [a.decode(errors="replace") for a in cmdline]
    return "kafka.Kafka" in args and str(data_dir / "server.properties") in args


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


_PR_SET_PDEATHSIG = 1


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when the forking thread exits.

    Linux sends that signal when the *thread* that forked exits, so it is only used from the
    long-lived spawner thread below, which lives as long as the process.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_SpawnJob = tuple[Callable[[], "subprocess.Popen[bytes]"], "queue.Queue[object]"]
_spawn_queue: queue.Queue[_SpawnJob] = queue.Queue()
_spawn_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        make, reply = _spawn_queue.get()
        try:
            reply.put(make())
        except BaseException as exc:  # handed back to the caller
            reply.put(exc)


def _spawn_tied_to_process(make: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run ``make`` (a Popen with the death-signal preexec) on one long-lived daemon thread.

    So a broker started or restarted from any thread (e.g. ``asyncio.to_thread``) still dies
    with this process, and not with the thread that happened to start it.
    """
    global _spawner
    with _spawn_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawner_loop, name="kafka-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue[object] = queue.Queue(maxsize=1)
    _spawn_queue.put((make, reply))
    result = reply.get()
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, subprocess.Popen)
    return result


# ------------------------------------------------------------------------- config


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """The broker's server.properties: one KRaft node, broker+controller, 127.0.0.1 only."""
    return f"""\
# Written by dev/kafka.py: a single-node KRaft broker for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{controller_port}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir / "data"}

# The project creates its topics explicitly.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# Internal topics on one node: replication factor 1, min ISR 1, few partitions.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

# No 3 s wait before the first rebalance of every new consumer group.
group.initial.rebalance.delay.ms=0

# After a kill -9 the restarted node cannot register until its old session expires
# (DUPLICATE_BROKER_REGISTRATION); the default 9 s makes a crash-restart take ~12 s.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500

# Small segments and a small cleaner buffer: fits a 512m heap.
log.segment.bytes=16777216
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
"""


def log4j2_properties(data_dir: Path) -> str:
    """log4j2 config: the broker's log goes to DIR/broker.log (INFO for kafka, WARN else)."""
    return f"""\
# Written by dev/kafka.py.
status = warn
name = syncd-dev-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {data_dir / "broker.log"}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = INFO
"""


def _read_cluster_id(data_dir: Path) -> str | None:
    """The cluster id a formatted data folder holds (data/meta.properties), if any."""
    try:
        text = (data_dir / "data" / "meta.properties").read_text()
    except OSError:
        return None
    m = re.search(r"^cluster\.id=(\S+)", text, re.M)
    return m.group(1) if m else None


def _read_ports(data_dir: Path) -> tuple[int, int] | None:
    """(port, controller port) from an existing server.properties, if any."""
    try:
        text = (data_dir / "server.properties").read_text()
    except OSError:
        return None
    m = re.search(r"^listeners=PLAINTEXT://[^:]+:(\d+),CONTROLLER://[^:]+:(\d+)", text, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ------------------------------------------------------------------------- broker


@dataclass
class Broker:
    """A running (or stopped) local broker; stop it with .stop()."""

    data_dir: Path
    port: int
    controller_port: int
    heap: str
    pid: int
    cluster_id: str
    jars_dir: Path
    die_with_parent: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        """The bootstrap address, ``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    def is_running(self) -> bool:
        """True while the broker's process is alive."""
        if self._proc is not None:
            return self._proc.poll() is None
        return _is_our_broker(self.pid, self.data_dir)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(0.1)
        return not self.is_running()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def _forget(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "pid").unlink()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop cleanly (SIGTERM); SIGKILL if it is still up after ``timeout`` seconds."""
        if self.is_running():
            self._signal(signal.SIGTERM)
            if not self._wait_gone(timeout):
                self._signal(signal.SIGKILL)
                self._wait_gone(10.0)
        self._forget()

    def kill(self) -> None:
        """Kill at once (SIGKILL), like a crash: no clean shutdown."""
        if self.is_running():
            self._signal(signal.SIGKILL)
            self._wait_gone(10.0)
        self._forget()

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self._launch(timeout)

    def _launch(self, timeout: float) -> None:
        """Start the JVM and wait until the broker answers a Metadata request."""
        d = self.data_dir
        cmd = [
            _java(),
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={d}",
            "-cp",
            str(self.jars_dir / "*"),
            "kafka.Kafka",
            str(d / "server.properties"),
        ]
        for port in (self.port, self.controller_port):
            if _port_open(port):
                raise KafkaDevError(f"port {port} on {HOST} is already in use")
        with open(d / "stdout.log", "ab") as out:

            def make() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=d,
                    start_new_session=True,
                    preexec_fn=_die_with_parent_preexec() if self.die_with_parent else None,
                )

            proc = _spawn_tied_to_process(make) if self.die_with_parent else make()
        self._proc = proc
        self.pid = proc.pid
        (d / "pid").write_text(f"{proc.pid}\n")
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        (d / "bootstrap").write_text(self.bootstrap + "\n")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "port not open yet"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise KafkaDevError(
                    f"the broker exited during start-up (see {self.data_dir}/broker.log)\n"
                    f"--- stdout.log ---\n{_tail(self.data_dir / 'stdout.log')}\n"
                    f"--- broker.log ---\n{_tail(self.data_dir / 'broker.log')}"
                )
            if _port_open(self.port):
                try:
                    meta = fetch_metadata(self.port)
                except (OSError, struct.error) as exc:
                    last_error = f"metadata request failed: {exc!r}"
                else:
                    if meta.cluster_id != self.cluster_id:
                        raise KafkaDevError(
                            f"port {self.port} answers for cluster {meta.cluster_id!r}, "
                            f"not ours ({self.cluster_id!r})"
                        )
                    if any(p == self.port for _, _, p in meta.brokers):
                        return
                    last_error = f"broker not registered yet: {meta}"
            time.sleep(0.2)
        raise KafkaDevError(
            f"the broker did not become ready within {timeout:.0f}s ({last_error}); "
            f"see {self.data_dir}/broker.log\n{_tail(self.data_dir / 'broker.log')}"
        )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaDevError("java is not on PATH (Java 17+ is needed for the Kafka broker)")
    return java


def _format_storage(jars_dir: Path, data_dir: Path, cluster_id: str) -> None:
    cmd = [
        _java(), "-Xmx256m",
        f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
        "-cp", str(jars_dir / "*"), "kafka.tools.StorageTool",
        "format", "-t", cluster_id, "-c", str(data_dir / "server.properties"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KafkaDevError(f"formatting the storage failed:\n{proc.stdout}{proc.stderr}")


def start(
    port: int = 0,
    data_dir: Path | str | None = None,
    heap: str = DEFAULT_HEAP,
    *,
    timeout: float = START_TIMEOUT,
    die_with_parent: bool = False,
) -> Broker:
    """Start a broker and wait until it serves Metadata requests.

    ``port=0`` picks a free port (or, for a data folder used before, its previous port).
    ``data_dir=None`` makes a fresh folder under /tmp. A data folder that was formatted before
    keeps its data and cluster id. ``die_with_parent=True`` makes the broker get SIGTERM when
    the calling process dies (for test sessions, so no broker outlives a killed run).
    """
    jars = ensure_jars()
    if data_dir is None:
        d = Path(tempfile.mkdtemp(prefix="syncd-kafka-", dir="/tmp"))
    else:
        d = Path(data_dir).expanduser().resolve()
        d.mkdir(parents=True, exist_ok=True)
    pid_file = d / "pid"
    if pid_file.is_file():
        old_pid = int(pid_file.read_text().strip() or 0)
        if old_pid and _is_our_broker(old_pid, d):
            raise KafkaDevError(f"a broker from {d} is already running (pid {old_pid})")
        pid_file.unlink()
    previous = _read_ports(d)
    if port == 0:
        port = previous[0] if previous else free_port()
    elif _port_open(port):
        raise KafkaDevError(f"port {port} on {HOST} is already in use")
    controller_port = previous[1] if previous else free_port()
    while controller_port == port:
        controller_port = free_port()
    (d / "server.properties").write_text(server_properties(d, port, controller_port))
    (d / "log4j2.properties").write_text(log4j2_properties(d))
    cluster_id = _read_cluster_id(d)
    if cluster_id is None:  # a fresh folder: format it once
        cluster_id = new_cluster_id()
        _format_storage(jars, d, cluster_id)
    broker = Broker(
        data_dir=d,
        port=port,
        controller_port=controller_port,
        heap=heap,
        pid=0,
        cluster_id=cluster_id,
        jars_dir=jars,
        die_with_parent=die_with_parent,
    )
    broker._launch(timeout)
    return broker


def attach(data_dir: Path | str) -> Broker | None:
    """The broker started earlier from ``data_dir`` (e.g. by the CLI), or None if not running."""
    d = Path(data_dir).expanduser().resolve()
    try:
        pid = int((d / "pid").read_text().strip())
    except (OSError, ValueError):
        return None
    ports = _read_ports(d)
    if ports is None or not _is_our_broker(pid, d):
        return None
    cluster_id = _read_cluster_id(d) or ""
    heap, jars = DEFAULT_HEAP, None
    with contextlib.suppress(OSError):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for i, arg in enumerate(args):
            if arg.startswith("-Xmx"):
                heap = arg[4:]
            elif arg == "-cp" and i + 1 < len(args):
                jars = Path(args[i + 1]).parent
    return Broker(d, ports[0], ports[1], heap, pid, cluster_id, jars or default_cache_dir())


# ---------------------------------------------------------------------------- CLI


def _cmd_jars(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    path = ensure_jars(Path(args.cache) if args.cache else None)
    print(f"kafka {kafka_version()} jars ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    print(path)
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    if args.cache:
        os.environ["SYNCD_KAFKA_CACHE"] = args.cache
    t0 = time.monotonic()
    broker = start(port=args.port, data_dir=args.dir, heap=args.heap, timeout=args.timeout)
    took = time.monotonic() - t0
    print(f"kafka {kafka_version()} started in {took:.1f}s, pid {broker.pid}", file=sys.stderr)
    print(f"stop with: python {sys.argv[0]} stop --dir {broker.data_dir}", file=sys.stderr)
    print(f"dir: {broker.data_dir}")
    print(broker.bootstrap)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    d = Path(args.dir).expanduser().resolve()
    broker = attach(d)
    if broker is None:
        print(f"no broker running from {d}", file=sys.stderr)
    else:
        broker.stop(timeout=args.timeout)
        print(f"stopped pid {broker.pid}", file=sys.stderr)
    if args.purge and d.is_dir():
        shutil.rmtree(d)
        print(f"removed {d}", file=sys.stderr)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    broker = attach(args.dir)
    if broker is None:
        print("not running")
        return 3
    try:
        meta = fetch_metadata(broker.port)
        state = "ready" if meta.brokers else "starting"
    except (OSError, struct.error) as exc:
        state = f"not answering ({exc})"
    print(f"running pid={broker.pid} bootstrap={broker.bootstrap} state={state}")
    return 0 if state == "ready" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev/kafka.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("jars", help="resolve the broker jars into the cache folder")
    p.add_argument("--cache", help="jar folder (default ~/.cache/syncd/kafka-<version>)")
    p.set_defaults(func=_cmd_jars)
    p = sub.add_parser("start", help="start a broker; prints 127.0.0.1:PORT last")
    p.add_argument("--port", type=int, default=0, help="0 = a free port (default)")
    p.add_argument("--dir", help="data folder (default: a new folder under /tmp)")
    p.add_argument("--heap", default=DEFAULT_HEAP, help="JVM -Xmx (default %(default)s)")
    p.add_argument("--timeout", type=float, default=START_TIMEOUT, help="seconds to wait")
    p.add_argument("--cache", help="jar folder (default ~/.cache/syncd/kafka-<version>)")
    p.set_defaults(func=_cmd_start)
    p = sub.add_parser("stop", help="stop the broker of a data folder")
    p.add_argument("--dir", required=True)
    p.add_argument("--timeout", type=float, default=STOP_TIMEOUT, help="seconds before SIGKILL")
    p.add_argument("--purge", action="store_true", help="also delete the data folder")
    p.set_defaults(func=_cmd_stop)
    p = sub.add_parser("status", help="is the broker of a data folder running?")
    p.add_argument("--dir", required=True)
    p.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KafkaDevError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
