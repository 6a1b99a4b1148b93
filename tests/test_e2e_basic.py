"""End to end over real sockets: smpplib binds, submits, gets its receipt."""

from __future__ import annotations

from tests.support.esme import Esme


def test_submit_gets_message_id_and_delivered_receipt(esme: Esme) -> None:
    resp = esme.submit(text=b"Hello \x1be")
    assert resp.status == 0
    message_id = resp.message_id.decode()
    assert message_id.isdigit()
    [receipt] = esme.wait_receipts(1)
    assert receipt["id"] == message_id
    assert receipt["receipted_message_id"].decode() == message_id
    assert receipt["stat"] == "DELIVRD"
    assert receipt["message_state"] == 2
    assert receipt["text"] == "Hello ?"
