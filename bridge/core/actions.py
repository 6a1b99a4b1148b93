"""What an operator may do to a message through the running daemon (the admin API):
retry it now, give up on it, have its receipt delivered again.

Each action writes one `admin_action` log line (who: the client's address; what;
which message; the reason given; never a number or a text) and an `operator` event
in the message's history. An action that does not fit the message's state is
refused with the reason (`ActionRefused`), and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bridge.core.cluster import OwnershipLost
from bridge.core.lookup import Lookup
from bridge.core.message import Lifecycle, Message
from bridge.core.outbox import Outbox
from bridge.core.receipts import ReceiptEngine, receipts_for
from bridge.smpp.constants import MessageState, Status

MAX_REASON = 200
GIVE_UP_ERROR = Status.ESME_RSUBMITFAIL  # the receipt's err: of a message an operator gave up on
IN_FLIGHT = "an attempt is in flight: try again when it has an answer"


class ActionRefused(Exception):
    """The action does not fit: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Actions:
    def __init__(
        self,
        lookup: Lookup,
        outbox: Outbox,
        receipts: ReceiptEngine,
        log: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lookup = lookup
        self.store = lookup.store
        self._outbox = outbox
        self._receipts = receipts
        self._log = log
        self._clock = clock

    async def _message(self, key: str) -> Message:
        message = await self.lookup.find_message(key)
        if message is None:
            raise ActionRefused(404, "no such message")
        return message

    def _record(self, message_ids: list[int], action: str, who: str, reason: str, **data: Any) -> None:
        """The audit line, and the history event (unless a write of its own took it already)."""
        for message_id in message_ids:
            self.store.journal.operator(message_id, action, who, reason, **data)
        self._log.info(
            "admin_action",
            who=who,
            action=action,
            message_id=message_ids[0] if len(message_ids) == 1 else None,
            messages=len(message_ids),
            reason=reason,
            **data,
        )

    # -- actions ---------------------------------------------------------------------

    async def retry(self, key: str, who: str, reason: str = "") -> dict[str, Any]:
        """Try a message waiting in the outbox now, instead of at the end of its backoff."""
        reason = reason[:MAX_REASON]
        message = await self._message(key)
        if message.lifecycle is not Lifecycle.QUEUED:
            raise ActionRefused(409, f"not waiting in the outbox (it is {message.lifecycle.name.lower()})")
        woken = self._outbox.retry_now(lambda m: m.id == message.id)
        if not woken:
            raise ActionRefused(409, "not waiting for a retry on this instance (in flight, or another instance's)")
        self._record(woken, "retry", who, reason)
        await self.store.flush_history(woken)
        return {"action": "retry", "retried": [self._rendered(message)]}

    async def retry_provider(self, provider: str, who: str, reason: str = "") -> dict[str, Any]:
        """Every message waiting for a retry whose route has `provider`, now."""
        reason = reason[:MAX_REASON]
        config = self.lookup.config
        if config is not None and provider not in config.providers:
            raise ActionRefused(404, "no such provider")
        woken = self._outbox.retry_now(lambda m: provider in m.route)
        if woken:
            self._record(woken, "retry", who, reason, provider=provider)
            await self.store.flush_history(woken)
        else:
            self._log.info("admin_action", who=who, action="retry", provider=provider, messages=0, reason=reason)
        return {"action": "retry", "provider": provider, "retried": len(woken)}

    async def give_up(self, key: str, who: str, reason: str) -> dict[str, Any]:
        """End a message that is waiting (in the outbox, or for its provider's report)
        with UNDELIV and its receipts; a later report changes nothing."""
        reason = reason.strip()[:MAX_REASON]
        if not reason:
            raise ActionRefused(400, "a reason is required")
        found = await self._message(key)
        # From here to apply_to's decision nothing awaits: the check that no attempt is
        # in flight and the final state are one step. On the outbox's own object, when
        # it holds the message, as the attempt checks and marks that one.
        message = self._outbox.holding(found.id) or found
        if message.lifecycle is Lifecycle.FINAL:
            raise ActionRefused(409, "already final")
        if message.lifecycle is Lifecycle.SENDING:
            raise ActionRefused(409, IN_FLIGHT)
        self._record([message.id], "give_up", who, reason)
        try:
            applied = await self._receipts.apply_to(
                message, MessageState.UNDELIVERABLE, int(GIVE_UP_ERROR), self._clock()
            )
        except OwnershipLost:  # another instance's attempt started meanwhile (the store refused)
            await self.store.flush_history([message.id])
            raise ActionRefused(409, IN_FLIGHT) from None
        if not applied:
            await self.store.flush_history([message.id])
            raise ActionRefused(409, "already final")
        self._outbox.retry_now(lambda m: m.id == message.id)  # its outbox place is let go now
        return {"action": "give_up", "message_id": self._rendered(message), "stat": "UNDELIV"}

    async def redeliver_receipt(self, key: str, who: str, reason: str = "") -> dict[str, Any]:
        """Queue the receipt(s) of a finished message again (the ESME lost it, or it was
        dropped after receipt_max_attempts)."""
        reason = reason[:MAX_REASON]
        message = await self._message(key)
        if message.lifecycle is not Lifecycle.FINAL or message.state is None or message.done_at is None:
            raise ActionRefused(409, "no final state yet: its receipt is still to come")
        receipts = receipts_for(message, message.parts, message.state, message.error, message.done_at)
        if not receipts:
            raise ActionRefused(409, "no part asked for this receipt (registered_delivery)")
        waiting = {r.id for r in await self.store.pending_receipts(message.system_id)}
        if any(r.id in waiting for r in receipts):
            raise ActionRefused(409, "its receipt is still waiting for delivery")
        self._record([message.id], "redeliver_receipt", who, reason, stat=message.state.stat)
        await self._receipts.queue_receipts(receipts)
        return {"action": "redeliver_receipt", "message_id": self._rendered(message), "receipts": len(receipts)}

    async def numbers_shown(self, who: str, message: Message | None = None, listed: int = 0) -> None:
        """Full phone numbers were shown (one message's, or a list of `listed` messages
        to a number): that access is audited too."""
        if message is not None:
            self._record([message.id], "show_numbers", who, "")
            await self.store.flush_history([message.id])
        else:
            self._log.info("admin_action", who=who, action="show_numbers", messages=listed, reason="")

    def _rendered(self, message: Message) -> str:
        return self.lookup.render(message.id, message.system_id)
