"""The daemon's admin HTTP server: manual actions and the operator page (docs/admin.md).

Owns the routes, the bearer auth, the server's life cycle and the read model the page
and ``/actions`` show (the page's HTML is :mod:`syncd.app.admin_page`).

An aiohttp app bound to ``[admin] host:port``, started by every unbounded ``syncd run``
(health: ``/healthz``, ``/readyz`` from :class:`~syncd.obs.health.Health`). It reads the
running publisher's pushers (their
:class:`~syncd.core.actions.ActionBook`, queues, park state and limiter) and changes only
actions: ``retry`` hands the newest kept quantity of each affected listing back to its
pusher through :meth:`AccountPusher.offer` (or brings a held listing's or a parked
account's probe forward), ``resolve`` resolves the action in its book. Both write the
changed record to ``topics.actions`` through the pusher's action writer.

Mutations need ``Authorization: Bearer <token>`` (``[admin] token_env`` /
``token_file``): no token configured answers 403, a missing or wrong one 401. The token
never appears in a response, a page or a log line.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from aiohttp import web

from syncd.app.admin_page import account_section, page
from syncd.config import AdminConfig
from syncd.core.actions import Action
from syncd.obs import metrics
from syncd.obs.health import Health
from syncd.publish.limits import CostLimiter, Limiter, Limiters, RequestLimiter
from syncd.publish.pusher import AccountPusher

log = structlog.get_logger("syncd.app.admin")

ROUTES = (
    ("GET", "/"),
    ("GET", "/actions"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/actions/{id}/retry"),
    ("POST", "/actions/{id}/resolve"),
)
"""Method and path of every route (docs/admin.md holds the same table)."""

SAMPLE_S = 1.0
"""How often the server looks at each pusher's acknowledged count (``last_success_at``)."""


class PusherSource(Protocol):
    """What the admin server reads: :class:`~syncd.publish.stage.PublishService` has it."""

    @property
    def pushers(self) -> Mapping[str, AccountPusher]: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rate(limiter: Limiter) -> dict[str, Any]:
    """The limiter's current pace, for people."""
    if isinstance(limiter, RequestLimiter):
        return {
            "kind": "calls_per_s",
            "rate_per_s": round(limiter.current_rate, 3),
            "configured_per_s": limiter.rate_per_s,
            "burst": limiter.burst,
        }
    if isinstance(limiter, CostLimiter):
        return {
            "kind": "cost_bucket",
            "restore_per_s": limiter.restore_rate,
            "bucket_size": limiter.maximum,
            "cost_per_call": limiter.cost,
        }
    if isinstance(limiter, Limiters):
        return {"kind": "combined", "parts": [_rate(p) for p in limiter.parts]}
    return {"kind": type(limiter).__name__}


class Admin:
    """The admin app over the pushers of the running publisher(s)."""

    def __init__(
        self, cfg: AdminConfig, sources: Sequence[PusherSource], health: Health | None = None
    ) -> None:
        self.cfg = cfg
        self.sources = list(sources)
        self.health = health if health is not None else Health()
        """What ``/healthz`` and ``/readyz`` answer from (a compute-only run has no source)."""
        self.retried: dict[str, int] = {}
        """Action id → epoch ms of the operator's newest Retry."""
        self.last_success: dict[str, int] = {}
        """Account → epoch ms at which its acknowledged count was last seen growing."""
        self._acked_seen: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.port: int | None = None
        """The bound port once started (useful with ``port = 0``)."""

    # -- reading -------------------------------------------------------------------

    def pushers(self) -> dict[str, AccountPusher]:
        out: dict[str, AccountPusher] = {}
        for source in self.sources:
            out.update(source.pushers)
        return out

    def sample(self) -> None:
        """Note the accounts whose acknowledged count grew since the last look."""
        now = _now_ms()
        for account, pusher in self.pushers().items():
            acked = pusher.counts["acked"]
            if acked > self._acked_seen.get(account, 0):
                self.last_success[account] = now
            self._acked_seen[account] = acked

    def _find(self, action_id: str) -> tuple[AccountPusher, Action] | None:
        for pusher in self.pushers().values():
            for a in pusher.book.actions.values():
                if a.id == action_id:
                    return pusher, a
        return None

    def state(self, a: Action) -> str:
        """``open``, ``retried`` (an operator's Retry since its last change) or ``resolved``."""
        if a.state == "open" and self.retried.get(a.id, -1) >= a.updated_at:
            return "retried"
        return a.state

    def action_view(self, a: Action, now_ms: int) -> dict[str, Any]:
        return {
            **a.record(),
            "state": self.state(a),
            "age_s": max(0, (now_ms - a.opened_at) // 1000),
            "retried_at": self.retried.get(a.id),
        }

    def actions(self) -> list[dict[str, Any]]:
        now = _now_ms()
        out = []
        for account, pusher in sorted(self.pushers().items()):
            for a in sorted(pusher.book.actions.values(), key=lambda a: (a.opened_at, a.action)):
                out.append({**self.action_view(a, now), "account": account})
        return out

    def account_state(self, pusher: AccountPusher) -> dict[str, Any]:
        d = pusher.parked_by()
        parked = None
        if d is not None:
            parked = {"row": d.row.id, "action": d.action, "class": d.error_class, "hint": d.hint}
        return {
            "account": pusher.account,
            "platform": pusher.platform,
            "partition": pusher.partition,
            "state": "parked" if d is not None else "active",
            "parked": parked,
            "limiter": _rate(pusher.limiter),
            "queue_depth": pusher.queue_depth(),
            "in_flight": len(pusher.inflight),
            "waiting_for_retry_pass": len(pusher.parked),
            "held_listings": len(pusher.held),
            "acked": pusher.counts["acked"],
            "failed": pusher.counts["failed"],
            "last_success_at": self.last_success.get(pusher.account),
        }

    # -- changing --------------------------------------------------------------------

    async def retry(self, pusher: AccountPusher, a: Action) -> dict[str, list[str]]:
        """Send the newest kept quantity of each of the action's listings again now."""
        out: dict[str, list[str]] = {
            "requeued": [],
            "already_queued": [],
            "probe_now": [],
            "no_quantity_kept": [],
        }
        for ref in list(a.listings):
            out[pusher.retry_now(ref)].append(ref)
        pusher.probe_now()  # a parked account probes at the next tick
        now = _now_ms()
        self.retried[a.id] = now
        log.info(
            "action_retry_requested",
            account=pusher.account,
            action=a.action,
            **{k: len(v) for k, v in out.items()},
        )
        await self._write(pusher, [{**a.record(), "state": "retried", "updated_at": now}])
        return out

    async def resolve(self, pusher: AccountPusher, a: Action) -> None:
        ids = pusher.book.resolve(a.action, _now_ms())
        self.retried.pop(a.id, None)
        log.info("action_resolved_by_operator", account=pusher.account, action=a.action)
        await self._write(pusher, [value for _key, value in pusher.book.records(ids)])

    async def _write(self, pusher: AccountPusher, values: list[dict[str, Any]]) -> None:
        if pusher.write_actions is not None and values:
            await pusher.write_actions([(v["id"], v) for v in values])

    # -- HTTP --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/actions", self._list)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_post(r"/actions/{id:.+}/retry", self._retry)
        app.router.add_post(r"/actions/{id:.+}/resolve", self._resolve)
        return app

    def _denied(self, request: web.Request) -> web.Response | None:
        """None when the request carries the configured bearer token."""
        token = self.cfg.token
        if token is None:
            return web.json_response(
                {
                    "error": "forbidden",
                    "reason": "no admin token is configured ([admin] token_env or token_file)",
                },
                status=403,
            )
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            log.warning("admin_unauthorized", path=request.path, remote=request.remote)
            return web.json_response(
                {"error": "unauthorized", "reason": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="syncd"'},
            )
        return None

    def _authorized_target(
        self, request: web.Request
    ) -> tuple[AccountPusher, Action] | web.Response:
        """The action a mutation names, or the answer refusing it (auth first, then lookup)."""
        denied = self._denied(request)
        return denied if denied is not None else self._target(request)

    def _target(self, request: web.Request) -> tuple[AccountPusher, Action] | web.Response:
        action_id = request.match_info["id"]
        found = self._find(action_id)
        if found is None:
            return web.json_response(
                {"error": "not_found", "reason": f"no action {action_id!r} on this process"},
                status=404,
            )
        return found

    async def _list(self, request: web.Request) -> web.Response:
        self.sample()
        return web.json_response({"actions": self.actions()})

    async def _metrics(self, request: web.Request) -> web.Response:
        """Every metric of this process (docs/metrics.md), Prometheus text format."""
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        """Alive: this answer comes from the event loop, and no stage task has ended."""
        ok, body = self.health.alive()
        return web.json_response(body, status=200 if ok else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        """Ready: every stage assigned and restored, the broker answering (syncd.obs.health)."""
        ok, body = self.health.ready()
        return web.json_response(body, status=200 if ok else 503)

    async def _retry(self, request: web.Request) -> web.Response:
        found = self._authorized_target(request)
        if isinstance(found, web.Response):
            return found
        pusher, a = found
        if a.state != "open":
            return web.json_response(
                {"error": "conflict", "reason": f"action {a.id!r} is {a.state}"}, status=409
            )
        listings = await self.retry(pusher, a)
        return web.json_response({"action": self.action_view(a, _now_ms()), "listings": listings})

    async def _resolve(self, request: web.Request) -> web.Response:
        found = self._authorized_target(request)
        if isinstance(found, web.Response):
            return found
        pusher, a = found
        await self.resolve(pusher, a)
        return web.json_response({"action": self.action_view(a, _now_ms())})

    async def _page(self, request: web.Request) -> web.Response:
        self.sample()
        return web.Response(text=self.render(), content_type="text/html", charset="utf-8")

    # -- the page ------------------------------------------------------------------------

    def render(self) -> str:
        """The operator page (:mod:`syncd.app.admin_page`)."""
        now = _now_ms()
        sections = []
        for account, pusher in sorted(self.pushers().items()):
            opened = sorted(pusher.book.open_actions(), key=lambda a: (a.opened_at, a.action))
            views = [(a, self.action_view(a, now)) for a in opened]
            sections.append(account_section(account, self.account_state(pusher), views, now))
        return page(sections)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve; a bind failure is logged and the daemon goes on without it."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            log.warning(
                "admin_bind_failed", host=self.cfg.host, port=self.cfg.port, error=e.strerror
            )
            return
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        self._sampler = asyncio.create_task(self._sample_loop(), name="admin-sample")
        log.info(
            "admin_started",
            host=self.cfg.host,
            port=self.port,
            mutations="enabled" if self.cfg.token is not None else "disabled_no_token",
        )

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("admin_stopped")

    async def _sample_loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)
