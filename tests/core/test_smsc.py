"""Smsc, fed hand-written PDUs through a fake connection: binds are always answered
(also when the check itself fails), requests go to the pipeline, a task that dies is
logged, drain waits for what was read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bridge.core.auth import BindDecision
from bridge.core.connection import Connection
from bridge.smpp.pdu import Pdu
from tests.core.fakes import FakeConnection
from tests.core.smsc_rig import (
    BIND_TRANSCEIVER_RESP,
    ESME_RBINDFAIL,
    ESME_RINVPASWD,
    ESME_ROK,
    ESME_RSYSERR,
    SUBMIT_SM_RESP,
    SmscRig,
    bind_transceiver,
    submit_sm,
)


async def test_a_bind_with_the_right_password_is_accepted_and_registered() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    assert rig.registry.count("esme1") == 1 and conn.account is not None


async def test_a_wrong_password_is_refused() -> None:
    rig = SmscRig()
    conn = FakeConnection()
    assert await rig.answered(conn, bind_transceiver(7, password=b"wrong")) == [
        (BIND_TRANSCEIVER_RESP, ESME_RINVPASWD, 7)
    ]
    assert rig.registry.count("esme1") == 0


async def test_a_bind_whose_check_raises_is_answered_and_logged_with_its_traceback() -> None:
    rig = SmscRig()

    async def broken(system_id: str, password: str, peer_host: str, now: float) -> BindDecision:
        raise RuntimeError("a bug in the password check")

    rig.authenticator.check = broken  # type: ignore[method-assign]  # failure injection: a bug in the check
    conn = FakeConnection()
    assert await rig.answered(conn, bind_transceiver(3)) == [(BIND_TRANSCEIVER_RESP, ESME_RBINDFAIL, 3)]
    assert conn.log.with_traceback("bind_failed")
    assert rig.registry.count("esme1") == 0


async def test_a_bind_during_shutdown_is_refused() -> None:
    rig = SmscRig()
    rig.smsc.accepting = False
    assert await rig.answered(FakeConnection(), bind_transceiver(2)) == [(BIND_TRANSCEIVER_RESP, ESME_RBINDFAIL, 2)]


async def test_a_submit_goes_to_the_pipeline_and_during_shutdown_is_refused_at_once() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    assert (await rig.answered(conn, submit_sm(2)))[-1] == (SUBMIT_SM_RESP, ESME_ROK, 2)
    rig.smsc.accepting = False
    rig.feed(conn, submit_sm(3))  # answered without waiting for anything
    conn.flush()
    assert conn.responses()[-1] == (SUBMIT_SM_RESP, ESME_RSYSERR, 3)
    assert len(rig.providers["p"].sent) == 1


async def test_drain_waits_for_requests_already_read_and_stop_cancels_what_is_left() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    provider = rig.providers["p"]
    provider.gate = asyncio.Event()
    rig.feed(conn, submit_sm(2))
    assert rig.smsc.in_flight == 1
    assert not await rig.smsc.drain(0.05)  # the provider has not answered
    provider.gate.set()
    assert await rig.smsc.drain(10)
    conn.flush()
    assert conn.responses()[-1] == (SUBMIT_SM_RESP, ESME_ROK, 2)
    provider.gate = asyncio.Event()
    rig.feed(conn, submit_sm(3))
    await rig.smsc.stop()
    assert rig.smsc.in_flight == 0 and provider.in_request == 0


async def test_a_request_task_that_dies_is_logged_with_its_traceback() -> None:
    rig = SmscRig()
    conn = await rig.bound()

    async def broken(conn: Connection, pdus: Sequence[Pdu], started: float) -> None:
        raise RuntimeError("a bug outside the pipeline's own handlers")

    rig.pipeline.handle_batch = broken  # type: ignore[method-assign]  # failure injection: a bug in the pipeline
    await rig.answered(conn, submit_sm(2))
    [line] = rig.log.events("task_failed")
    assert line["task"] == "smsc" and isinstance(line["exc_info"], RuntimeError)
