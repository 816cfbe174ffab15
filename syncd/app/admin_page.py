"""The operator page of the admin server (docs/admin.md): HTML for people.

Owns the page's HTML: one section per channel account (its state, limiter, queues and
open manual actions with Retry and Resolve buttons), the page's head and its script
(the admin token kept in the browser tab only). :class:`syncd.app.admin.Admin` hands it
the read model (:meth:`~syncd.app.admin.Admin.account_state`,
:meth:`~syncd.app.admin.Admin.action_view`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from syncd.core.actions import Action


def page(sections: Sequence[str]) -> str:
    """The whole page around the accounts' sections."""
    parts = [_HEAD]
    if not sections:
        parts.append("<p>No channel account is published by this process yet.</p>")
    parts.extend(sections)
    parts.append(_TAIL)
    return "".join(parts)


def account_section(
    account: str,
    st: Mapping[str, Any],
    actions: Sequence[tuple[Action, Mapping[str, Any]]],
    now: int,
) -> str:
    """One account's section: ``st`` is its state, ``actions`` its open actions (oldest
    first) with their views; ``now`` in epoch ms."""
    e = html.escape
    if st["parked"] is not None:
        p = st["parked"]
        status = (
            f'<span class="parked">parked</span> ({e(p["class"])}, row {e(p["row"])}):'
            f" {e(p['hint'])}"
        )
    else:
        status = '<span class="active">active</span>'
    last = st["last_success_at"]
    last_txt = "not seen yet" if last is None else f"{_age((now - last) // 1000)} ago"
    lim = st["limiter"]
    rows = []
    for a, v in actions:
        listings = ", ".join(e(ref) for ref in a.listings) or "(the whole account)"
        ident = e(quote(a.id, safe=":/"))
        rows.append(
            f'<tr data-action="{e(a.id)}"><td>{e(a.action)}<br><small>{e(a.error_class)}'
            f" · {e(v['state'])} · {a.count}×</small></td><td>{e(a.hint)}</td>"
            f"<td>{listings}</td><td>{_age(v['age_s'])}</td><td>"
            f"<button type=\"button\" onclick=\"act('{ident}', 'retry')\">Retry</button> "
            f"<button type=\"button\" onclick=\"act('{ident}', 'resolve')\">Resolve</button>"
            "</td></tr>"
        )
    table = (
        "<table><tr><th>action</th><th>hint</th><th>affected listings</th><th>age</th>"
        "<th></th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No open action.</p>"
    )
    return (
        f'<section data-account="{e(account)}"><h2>{e(account)}</h2>'
        f'<p class="state">{status}<br>'
        f"limiter: {e(_rate_text(lim))} · queue depth: {st['queue_depth']}"
        f" · in flight: {st['in_flight']} · waiting for the retry pass:"
        f" {st['waiting_for_retry_pass']} · held listings: {st['held_listings']}"
        f" · last success: {e(last_txt)}</p>{table}</section>"
    )


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _rate_text(lim: Mapping[str, Any]) -> str:
    kind = lim.get("kind")
    if kind == "calls_per_s":
        return f"{lim['rate_per_s']:g} calls/s (configured {lim['configured_per_s']:g})"
    if kind == "cost_bucket":
        restore = lim.get("restore_per_s")
        return (
            "cost bucket, not synchronised yet"
            if restore is None
            else (f"cost bucket, restores {restore:g} points/s")
        )
    if kind == "combined":
        return " + ".join(_rate_text(p) for p in lim.get("parts", []))
    return str(kind)


_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>syncd: manual actions</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #bbb; padding: 0.3em 0.5em; vertical-align: top; text-align: left; }
.parked { color: #a00; font-weight: bold; } .active { color: #070; font-weight: bold; }
#status { min-height: 1.2em; }
</style></head><body>
<h1>syncd: manual actions</h1>
<p><label>Admin token: <input type="password" id="token" autocomplete="off"></label>
(needed by Retry and Resolve; kept in this browser tab only)</p>
<p id="status" role="status"></p>
"""

_TAIL = """<script>
// The token lives in this tab's sessionStorage only; the outcome of the last click is
// kept there too, to be shown again after the page reloads.
const TOKEN = "syncd-admin-token", NOTE = "syncd-admin-note";
const tokenField = document.getElementById("token");
const status = document.getElementById("status");
tokenField.value = sessionStorage.getItem(TOKEN) || "";
tokenField.addEventListener("change", () => sessionStorage.setItem(TOKEN, tokenField.value));
status.textContent = sessionStorage.getItem(NOTE) || "";
sessionStorage.removeItem(NOTE);
const RETRIED = {requeued: "sent again now", already_queued: "already queued",
  probe_now: "probed at the next tick", no_quantity_kept: "sent with their next quantity"};
async function act(id, what) {
  const token = tokenField.value.trim();
  if (!token) { status.textContent = "Type the admin token first."; tokenField.focus(); return; }
  sessionStorage.setItem(TOKEN, token);
  let r = null, body = {};
  try {
    r = await fetch("/actions/" + id + "/" + what, {
      method: "POST", headers: {"Authorization": "Bearer " + token}});
    body = await r.json();
  } catch (e) {
    if (r === null) { status.textContent = what + " failed: " + e; return; }
  }
  if (!r.ok) {
    status.textContent = what + " refused (" + r.status + "): " + (body.reason || "");
    return;
  }
  const done = Object.entries(body.listings || {}).filter(([, refs]) => refs.length)
    .map(([k, refs]) => refs.length + " listing(s) " + (RETRIED[k] || k));
  const note = (what === "retry" ? "Retry sent for " : "Resolved ")
    + ((body.action && body.action.id) || decodeURIComponent(id))
    + (done.length ? ": " + done.join(", ") : "") + " (" + new Date().toLocaleTimeString() + ")";
  status.textContent = note;
  sessionStorage.setItem(NOTE, note);
  setTimeout(() => location.reload(), 500);
}
</script></body></html>
"""
