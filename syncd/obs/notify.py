"""The systemd notify protocol (sd_notify): READY, WATCHDOG, STOPPING and STATUS.

Messages are ``KEY=value`` lines in one datagram to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Without
``NOTIFY_SOCKET`` every call is a no-op. ``$WATCHDOG_USEC`` (honoured only when
``$WATCHDOG_PID`` is unset or this process) turns on ``WATCHDOG=1`` every half of it.

Hand-written (a few lines of :mod:`socket`): the only package for it, sdnotify, is
unmaintained since 2017.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("syncd.obs.notify")


class Notifier:
    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_s = watchdog_s
        """Seconds between two ``WATCHDOG=1`` (half of ``WATCHDOG_USEC``); None: off."""
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        watchdog = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and ours else None
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog)

    def send(self, **fields: str) -> bool:
        """Send one message (``send(READY="1", STATUS="...")``); False if not sent."""
        if not self.address:
            return False
        msg = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(msg, self.address)
        except OSError as e:
            if not self._failed:  # once: the socket will not come back by itself
                log.warning("notify_failed", error=e.strerror or type(e).__name__)
            self._failed = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def run(self, ready: Callable[[], bool], alive: Callable[[], bool]) -> None:
        """``READY=1`` once ``ready()`` first holds; ``WATCHDOG=1`` every ``watchdog_s``
        while ``alive()``. Runs until cancelled."""
        if not self.address:
            return
        tick = min(0.2, self.watchdog_s or 0.2)
        loop = asyncio.get_running_loop()
        sent_ready = False
        next_dog = loop.time()
        while True:
            if not sent_ready and ready():
                sent_ready = True
                log.info("notify_ready", sent=self.send(READY="1", STATUS="ready"))
            if self.watchdog_s is not None and loop.time() >= next_dog and alive():
                self.send(WATCHDOG="1")
                next_dog = loop.time() + self.watchdog_s
            await asyncio.sleep(tick)
