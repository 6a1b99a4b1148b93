"""What the store sends to Redis per message write (numbers for docs/redis.md).

A message's usual life in the store is five writes: inserted QUEUED, SENDING,
ACCEPTED (with its provider id and due time), FINAL with its receipt, the receipt
deleted once the ESME acknowledged it. This runs `messages` messages through them,
one call at a time (each its own MULTI/EXEC), against a throwaway redis-server, and
reads the bytes Redis received (INFO stats total_net_input_bytes) around each step.
Only RedisStore's public calls are used, so the same script measures any version:

    python -m tests.redis.measure_bytes
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis

from bridge.core.message import Lifecycle, Message, Receipt
from bridge.smpp.constants import MessageState
from bridge.store.redis import RedisStore
from tests.redis.support import print_measured
from tests.support.providers import stored_message


def _message(message_id: int) -> Message:
    m = stored_message(message_id, Lifecycle.QUEUED, provider_id="")
    m.text = "Your code is 123456"
    return m


def _receipt(m: Message) -> Receipt:
    return Receipt(
        id=f"{m.id}:{m.id}:2",
        system_id=m.system_id,
        message_id=m.id,
        state=MessageState.DELIVERED,
        error=0,
        submitted_at=m.created_at,
        done_at=m.created_at + 3,
        preview=m.text[:20],
        source=m.destination,
        destination=m.source,
        provider="p",
    )


async def measure(url: str, messages: int = 1000) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    store = RedisStore(url, prefix="measure")
    await store.open()
    sent: dict[str, int] = {}

    def received() -> int:
        return int(client.info("stats")["total_net_input_bytes"])

    async def step(name: str, write: Callable[[int], Awaitable[None]]) -> None:
        before = received()
        for i in range(messages):
            await write(i)
        # INFO itself is counted: take off what the second INFO sent.
        sent[name] = received() - before - len(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")

    batch = [_message(10_000 + i) for i in range(messages)]
    try:
        await step("insert QUEUED", lambda i: store.insert_messages([batch[i]]))

        def to(lifecycle: Lifecycle, i: int) -> Message:
            m = batch[i]
            m.lifecycle = lifecycle
            if lifecycle is Lifecycle.ACCEPTED:
                m.provider, m.provider_ids, m.due_at = "p", [f"p-{m.id}"], 1e12
            if lifecycle is Lifecycle.FINAL:
                m.state, m.done_at = MessageState.DELIVERED, m.created_at + 3
            return m

        await step("update SENDING", lambda i: store.update_messages([to(Lifecycle.SENDING, i)]))
        await step("update ACCEPTED", lambda i: store.update_messages([to(Lifecycle.ACCEPTED, i)]))
        await step(
            "update FINAL + receipt",
            lambda i: store.update_messages([to(Lifecycle.FINAL, i)], [_receipt(batch[i])]),
        )
        await step("delete receipt", lambda i: store.delete_receipt(_receipt(batch[i]).id))
    finally:
        await store.close()
        client.close()
    out = {f"{name} (bytes/write)": round(total / messages, 1) for name, total in sent.items()}
    out["one message's five writes (bytes)"] = round(sum(sent.values()) / messages, 1)
    return out


def main() -> None:
    print_measured(measure)


if __name__ == "__main__":
    main()
