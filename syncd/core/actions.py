"""Manual actions: what a seller or operator has to do, one record per cause and account.

Owns the pure side of ``topics.actions`` (compacted, key = action id): the
:class:`ActionBook` of one channel account, which groups failures by the error table
row's ``action`` so that one cause on one account is one record with the affected
listings under it (not one per listing), and the record values written for it. The
pusher feeds it decisions and successes; the publisher writes the records it returns.

Record value (JSON), key ``<account>/<action>``::

    {"id", "account", "action", "class", "hint", "listings": [listing refs],
     "state": "open" | "resolved", "opened_at", "updated_at" (epoch ms), "count"}

``count`` is how many failures were recorded under the action since it was opened;
``hint`` is the newest failure's (rendered for its SKU). An action is resolved when
every listing under it succeeded again, or at once by :meth:`ActionBook.resolve` (the
account was unparked). A later failure for the same cause opens it again.

Pure: no I/O, no clock (the caller passes ``now_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.core.errortable import Decision
from syncd.core.keys import action_id

State = Literal["open", "resolved"]


@dataclass(slots=True)
class Action:
    account: str
    action: str
    error_class: str
    hint: str
    opened_at: int
    updated_at: int
    listings: dict[str, None] = field(default_factory=dict)
    """Affected listing refs, oldest first (a dict keeps the order)."""
    state: State = "open"
    count: int = 0

    @property
    def id(self) -> str:
        return action_id(self.account, self.action)

    def record(self) -> dict[str, Any]:
        """The value written to ``topics.actions``."""
        return {
            "id": self.id,
            "account": self.account,
            "action": self.action,
            "class": self.error_class,
            "hint": self.hint,
            "listings": list(self.listings),
            "state": self.state,
            "opened_at": self.opened_at,
            "updated_at": self.updated_at,
            "count": self.count,
        }


class ActionBook:
    """The actions of one channel account. Each method returns the ids it changed; read
    the records to write with :meth:`records`."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.actions: dict[str, Action] = {}
        """By action name (open and resolved ones)."""

    def open(self, decision: Decision, listing_ref: str | None, now_ms: int) -> str:
        """A failure that needs a person: add it (and its listing) to its action."""
        a = self.actions.get(decision.action)
        if a is None or a.state == "resolved":
            a = Action(
                self.account, decision.action, decision.error_class, decision.hint, now_ms, now_ms
            )
            self.actions[decision.action] = a
        a.hint = decision.hint
        a.error_class = decision.error_class
        a.updated_at = now_ms
        a.count += 1
        if listing_ref is not None:
            a.listings[listing_ref] = None
        return a.id

    def cleared(self, listing_ref: str, now_ms: int) -> list[str]:
        """The listing succeeded: take it out of every open action; an action left with
        no listing is resolved."""
        changed = []
        for a in self.actions.values():
            if a.state == "open" and listing_ref in a.listings:
                del a.listings[listing_ref]
                a.updated_at = now_ms
                if not a.listings:
                    a.state = "resolved"
                changed.append(a.id)
        return changed

    def resolve(self, action: str, now_ms: int) -> list[str]:
        """The cause is gone (the account was unparked): resolve the whole action."""
        a = self.actions.get(action)
        if a is None or a.state == "resolved":
            return []
        a.state = "resolved"
        a.updated_at = now_ms
        return [a.id]

    def open_actions(self) -> list[Action]:
        return [a for a in self.actions.values() if a.state == "open"]

    def records(self, ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """(key, value) of each changed action, once per id, in first-change order."""
        by_id = {a.id: a for a in self.actions.values()}
        return [(i, by_id[i].record()) for i in dict.fromkeys(ids) if i in by_id]
