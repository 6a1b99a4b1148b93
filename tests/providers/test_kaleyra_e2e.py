"""Kaleyra end to end over real sockets: smpplib -> bridge -> Kaleyra simulator (HTTP on
127.0.0.1) -> callback (or poll) -> deliver_sm receipt back to smpplib."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import smpplib.gsm

from bridge.simulators.kaleyra import HANG_NUMBER
from bridge.smpp.constants import Status
from bridge.smpp.text import gsm_encode
from tests.providers.test_kaleyra import KEY, SID, TOKEN
from tests.providers.test_kaleyra import PROFILE as KALEYRA_PROFILE
from tests.support.esme import Esme
from tests.support.providers import Rig, account, metric, post_json
from tests.support.running import RunningBridge
from tests.support.servers import free_port
from tests.support.waiting import wait_for


@pytest.fixture
def rig_factory(kaleyra_rig_factory: Callable[..., Rig]) -> Callable[..., Rig]:
    return kaleyra_rig_factory


@pytest.fixture
def rig(rig_factory: Callable[..., Rig]) -> Rig:
    return rig_factory()


def callback_object(rig: Rig) -> dict[str, str]:
    return {"url": f"http://127.0.0.1:{rig.http_port}/callbacks/kaleyra/{TOKEN}", "method": "POST"}


def test_the_double_is_strict_by_default(rig: Rig) -> None:
    """The double refuses what document 001 does not allow (so the tests above, which
    pass through it, prove the connector's request is allowed)."""
    url = f"{rig.sim.url}/v1/{SID}/sms"
    form = b"to=%2B919876543210&sender=KLRHXA&type=TXN&body=hi"
    assert post_json(url, form, headers={"api-key": KEY, "Content-Type": "application/x-www-form-urlencoded"}) == 400
    inline = {"to": "+919876543210", "sender": "KLRHXA", "type": "TXN", "body": "hi", "callback": callback_object(rig)}
    assert post_json(url, inline, headers={"api-key": KEY}) == 400  # `callback` is a /messages parameter
    assert post_json(url, inline | {"callback": None, "to": "919876543210"}, headers={"api-key": KEY}) == 400
    assert rig.sim.app["messages"] == {}


# -- the four kinds of text ------------------------------------------------------------------


def test_gsm_text_goes_out_as_documented_and_comes_back_delivered(rig: Rig) -> None:
    text = "Hello [world] 10€ @home"
    resp = rig.esme.submit(destination="919876543210", text=gsm_encode(text), source="MYBRAND")
    assert resp.status == Status.ESME_ROK
    message_id = resp.message_id.decode()
    [request] = rig.sends()
    assert request["path"] == f"/v1/{SID}/sms"
    assert request["headers"]["api-key"] == KEY
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == {
        "to": "+919876543210",
        "sender": "KLRHXA",
        "type": "TXN",
        "body": text,
        "ref_custom": [message_id],
        "callback_profile_id": KALEYRA_PROFILE,
    }
    [receipt] = rig.esme.wait_receipts(1)
    assert receipt["id"] == message_id
    assert receipt["receipted_message_id"].decode() == message_id
    assert (receipt["stat"], receipt["err"], receipt["message_state"]) == ("DELIVRD", "000", 2)
    assert receipt["source_addr"] == b"919876543210"


def test_ucs2_text_is_sent_with_the_unicode_flag(rig: Rig) -> None:
    text = "Привет, мир ✓ 你好"
    resp = rig.esme.submit(destination="919876543210", text=text.encode("utf-16-be"), data_coding=8)
    assert resp.status == Status.ESME_ROK
    [request] = rig.sends()
    assert request["json"]["body"] == text
    assert request["json"]["unicode"] == 1
    assert "flash" not in request["json"]
    [receipt] = rig.esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")


@pytest.mark.parametrize("data_coding", [0x10, 0xF0, 0x18])
def test_flash_message_class_0_sets_flash(rig: Rig, data_coding: int) -> None:
    text = "Your code is 1234"
    payload = text.encode("utf-16-be") if data_coding == 0x18 else gsm_encode(text)
    resp = rig.esme.submit(destination="14155550100", text=payload, data_coding=data_coding)
    assert resp.status == Status.ESME_ROK
    [request] = rig.sends()
    assert request["json"]["flash"] == 1
    assert request["json"]["body"] == text
    assert request["json"]["to"] == "+14155550100"
    [receipt] = rig.esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")


def test_three_part_udh_message_is_one_request_with_the_whole_text(rig: Rig) -> None:
    text = ("Part of a long message that needs three SMS parts to carry. " * 7)[:400]
    parts, _, esm_class = smpplib.gsm.make_parts(text)
    assert len(parts) == 3 and esm_class == 0x40
    ids = []
    for part in parts:
        resp = rig.esme.submit(destination="919876543210", text=part, esm_class=esm_class)
        assert resp.status == Status.ESME_ROK
        ids.append(resp.message_id.decode())
    [request] = rig.sends()
    assert request["json"]["body"] == text
    assert request["json"]["ref_custom"] == [ids[0]]
    receipts = rig.esme.wait_receipts(3)
    assert sorted(r["id"] for r in receipts) == sorted(ids)
    assert {r["stat"] for r in receipts} == {"DELIVRD"}


# -- delivery reports ------------------------------------------------------------------------


def test_intermediate_sent_then_delivered(rig: Rig) -> None:
    resp = rig.esme.submit(destination="919876543210", registered_delivery=0x11)
    assert resp.status == Status.ESME_ROK
    receipts = rig.esme.wait_receipts(2)
    assert [r["stat"] for r in receipts] == ["ENROUTE", "DELIVRD"]
    assert {r["id"] for r in receipts} == {resp.message_id.decode()}


@pytest.mark.parametrize(
    ("number", "stat", "err", "state"),
    [
        ("999101234567", "UNDELIV", "205", 5),  # Undelivered / ABSENT-SUB
        ("999111234567", "EXPIRED", "214", 3),  # Undelivered / EXPIRED
        ("999121234567", "REJECTD", "116", 8),  # Failed / DND-NUMB (a NOT-SENT trace)
        ("999131234567", "UNDELIV", "001", 5),  # Failed without a trace
    ],
)
def test_failed_deliveries_map_status_and_trace(rig: Rig, number: str, stat: str, err: str, state: int) -> None:
    resp = rig.esme.submit(destination=number)
    assert resp.status == Status.ESME_ROK
    [receipt] = rig.esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"], receipt["err"], receipt["message_state"]) == (
        resp.message_id.decode(),
        stat,
        err,
        state,
    )


def test_without_a_callback_profile_the_status_is_polled(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(poll_interval=0.2, callback_profile_id="")
    resp = rig.esme.submit(destination="919876543210")
    assert resp.status == Status.ESME_ROK
    [request] = rig.sends()
    assert not {"callback", "callback_profile_id"} & set(request["json"])
    [receipt] = rig.esme.wait_receipts(1, timeout=15)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
    poll = rig.polls()[-1]
    assert poll["path"] == f"/v1/{SID}/sms/status"
    assert poll["headers"]["api-key"] == KEY
    assert poll["query"]["message_ids"].endswith(":1")
    assert rig.sim.app["callbacks"] == []  # the send asked for none, so the double fired none


def test_the_messages_endpoint_takes_ref_and_the_inline_callback_object(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(endpoint="messages", callback_profile_id="")
    resp = rig.esme.submit(destination="919876543210")
    assert resp.status == Status.ESME_ROK
    [request] = rig.sends()
    assert request["path"] == f"/v1/{SID}/messages"
    assert request["json"]["ref"] == resp.message_id.decode()
    assert request["json"]["callback"] == callback_object(rig)
    assert "ref_custom" not in request["json"] and "callback_profile_id" not in request["json"]
    [receipt] = rig.esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
    assert {c["url"] for c in rig.sim.app["callbacks"]} == {callback_object(rig)["url"]}


def test_a_replayed_callback_changes_nothing(rig: Rig) -> None:
    first = rig.esme.submit(destination="919876543210")
    [receipt] = rig.esme.wait_receipts(1)
    assert receipt["stat"] == "DELIVRD"
    [provider_id] = list(rig.sim.app["messages"])
    # Kaleyra sends the final callback again, then a contradicting one: both ignored.
    assert rig.sim_post("/_sim/report", {"message_id": provider_id, "status": "Delivered"}) == 200
    assert rig.sim_post("/_sim/report", {"message_id": provider_id, "status": "Undelivered"}) == 200
    second = rig.esme.submit(destination="919876543211")  # a later receipt: anything owed comes before it
    receipts = rig.esme.wait_receipts(2)
    assert [(r["id"], r["stat"]) for r in receipts] == [
        (first.message_id.decode(), "DELIVRD"),
        (second.message_id.decode(), "DELIVRD"),
    ]
    assert metric(rig.bridge, "smpp_bridge_provider_reports_total", provider="kaleyra", result="duplicate") == 2


def test_callbacks_for_unknown_ids_and_wrong_tokens(rig: Rig) -> None:
    report = {"id": "x:1", "status": "Delivered"}
    assert post_json(f"http://127.0.0.1:{rig.http_port}/callbacks/kaleyra/{TOKEN}", report) == 200
    assert post_json(f"http://127.0.0.1:{rig.http_port}/callbacks/kaleyra/wrong-token", report) == 404
    assert metric(rig.bridge, "smpp_bridge_callbacks_total", provider="kaleyra", result="unknown_id") == 1
    resp = rig.esme.submit(destination="919876543210")  # the bridge carries on
    [receipt] = rig.esme.wait_receipts(1)
    assert receipt["id"] == resp.message_id.decode()
    # The ReceiptEngine asks the store again for a while (a report may beat its send's
    # answer) before it counts the report as one for an unknown id.
    wait_for(
        lambda: metric(rig.bridge, "smpp_bridge_provider_reports_total", provider="kaleyra", result="unknown_id"), 15
    )
    assert metric(rig.bridge, "smpp_bridge_provider_reports_total", provider="kaleyra", result="unknown_id") == 1


def test_a_poll_due_at_a_restart_is_made_by_the_next_run_at_its_stored_time(
    rig_factory: Callable[..., Rig],
    start_bridge: Callable[..., RunningBridge],
    connect: Callable[[RunningBridge], Esme],
) -> None:
    """The first poll's due time is stored with the message: the next run polls at
    that time even though its own poll_interval is an hour."""
    rig = rig_factory(poll_interval=2, callback_profile_id="")
    resp = rig.esme.submit(destination="999601234567")  # stays Sent for now
    assert resp.status == Status.ESME_ROK
    [provider_id] = list(rig.sim.app["messages"])
    rig.esme.close()
    rig.bridge.stop()
    # delivered while the bridge was down (and no callback was asked for)
    delivered = {"message_id": provider_id, "status": "Delivered", "poll_status": "Delivered"}
    assert rig.sim_post("/_sim/report", delivered) == 200
    overrides = copy.deepcopy(rig.overrides)
    overrides["providers"]["kaleyra"]["poll_interval"] = 3600
    [receipt] = connect(start_bridge(**overrides)).wait_receipts(1, timeout=15)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
    assert len(rig.polls()) == 1


# -- every documented error, through the simulator ------------------------------------------------

ERRORS = [
    ("9990000400", Status.ESME_RSUBMITFAIL),  # E400
    ("9990000401", Status.ESME_RINVMSGLEN),  # E401
    ("9990000402", Status.ESME_RINVSCHED),  # E402
    ("9990000403", Status.ESME_RX_T_APPN),  # E403 (not sent: would fail over)
    ("9990000404", Status.ESME_RINVNUMDESTS),  # E404
    ("9990000405", Status.ESME_RINVNUMDESTS),  # E405 (error keyed by "time", as documented)
    ("9990000406", Status.ESME_RINVDSTADR),  # E406
    ("9990000413", Status.ESME_RINVDSTADR),  # E413 to
    ("9990000414", Status.ESME_RINVSRCADR),  # E413 sender
    ("9990000415", Status.ESME_RINVMSGLEN),  # E413 body
    ("9990000416", Status.ESME_RINVSCHED),  # E413 time
    ("9990000417", Status.ESME_RSUBMITFAIL),  # E413 another field
    ("9990000600", Status.ESME_RINVDSTADR),  # E600
    ("9990000602", Status.ESME_RINVSRCADR),  # E602
    ("9990000603", Status.ESME_RSYSERR),  # E603: a parameter we got wrong
    ("9990000623", Status.ESME_RSUBMITFAIL),  # E623
    ("9990000103", Status.ESME_RSYSERR),  # HTTP 500 with E103
    ("9990000429", Status.ESME_RTHROTTLED),  # HTTP 429
    ("9990000500", Status.ESME_RSYSERR),  # HTTP 500
    ("9990000503", Status.ESME_RSYSERR),  # HTTP 503
]


def test_every_documented_error_maps_to_its_command_status(rig: Rig) -> None:
    for number, status in ERRORS:
        resp = rig.esme.submit(destination=number)
        assert (number, resp.status) == (number, status)
    assert len(rig.sends()) == len(ERRORS)
    rig.esme.assert_no_deliver_sm()


def test_errors_the_provider_finds_itself(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(sim_options={"max_length": 50}, allowed_senders=["*"])
    too_long = rig.esme.submit(destination="919876543210", text=b"x" * 51, source="MYBRAND")
    assert too_long.status == Status.ESME_RINVMSGLEN  # E401
    assert rig.esme.submit(destination="919876543210", source="NOTAPPROVED").status == Status.ESME_RINVSRCADR  # E602
    assert rig.esme.submit(destination="919876543210", source="MYBRAND").status == Status.ESME_ROK
    assert [r["json"]["sender"] for r in rig.sends()] == ["MYBRAND", "NOTAPPROVED", "MYBRAND"]


def test_a_bad_api_key_is_a_system_error(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(api_key="wrong-key")
    assert rig.esme.submit(destination="919876543210").status == Status.ESME_RSYSERR
    assert rig.sends()[0]["headers"]["api-key"] == "wrong-key"


def test_numbers_and_lengths_refused_before_any_request(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(max_parts=2)
    assert rig.esme.submit(destination="0987654321", dest_addr_ton=0).status == Status.ESME_RINVDSTADR
    assert rig.esme.submit(destination="919876543210", text=b"a" * 200, data_coding=0).status == Status.ESME_ROK
    long = "a" * 400
    ids = []
    for part in smpplib.gsm.make_parts(long)[0]:
        resp = rig.esme.submit(destination="919876543210", text=part, esm_class=0x40)
        ids.append(resp.status)
    assert ids[-1] == Status.ESME_RINVMSGLEN  # three parts > max_parts=2: refused when the set completes
    assert len(rig.sends()) == 1


def test_a_read_timeout_after_sending_is_unknown_and_never_resent(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(timeout=0.5)
    assert rig.esme.submit(destination=HANG_NUMBER).status == Status.ESME_RSYSERR
    assert len(rig.sends()) == 1
    assert metric(rig.bridge, "smpp_bridge_upstream_requests_total", provider="kaleyra", outcome="timeout") == 1


def test_a_refused_connection_fails_over_to_the_next_provider(
    start_bridge: Callable[..., RunningBridge], connect: Callable[[RunningBridge], Esme]
) -> None:
    port = free_port()  # nothing listens there
    bridge = start_bridge(
        accounts=[account("both")],
        providers={
            "kaleyra": {
                "type": "kaleyra",
                "base_url": f"http://127.0.0.1:{port}",
                "sid": SID,
                "api_key": KEY,
                "sender": "KLRHXA",
                "sms_type": "TXN",
                "poll_interval": 60,
            },
            "sim": {"type": "simulator", "delivery_delay": 0.05},
        },
        routes=[{"name": "both", "providers": ["kaleyra", "sim"]}],
    )
    esme = connect(bridge)
    resp = esme.submit(destination="919876543210")
    assert resp.status == Status.ESME_ROK
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
