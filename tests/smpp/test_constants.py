"""SMPP numbers (testing level 1): each table walked against values copied from the
SMPP v3.4 specification (5.1.2.1 command ids, 5.1.3 command_status, 5.2.28
message_state, Appendix B stat words)."""

from __future__ import annotations

import pytest

from bridge.smpp.constants import (
    BIND_COMMANDS,
    COMMAND_BY_ID,
    STAT_BY_STATE,
    Command,
    MessageState,
    Status,
    status_name,
)

SPEC_COMMAND_IDS = {
    "generic_nack": 0x80000000,
    "bind_receiver": 0x00000001,
    "bind_receiver_resp": 0x80000001,
    "bind_transmitter": 0x00000002,
    "bind_transmitter_resp": 0x80000002,
    "query_sm": 0x00000003,
    "query_sm_resp": 0x80000003,
    "submit_sm": 0x00000004,
    "submit_sm_resp": 0x80000004,
    "deliver_sm": 0x00000005,
    "deliver_sm_resp": 0x80000005,
    "unbind": 0x00000006,
    "unbind_resp": 0x80000006,
    "replace_sm": 0x00000007,
    "replace_sm_resp": 0x80000007,
    "cancel_sm": 0x00000008,
    "cancel_sm_resp": 0x80000008,
    "bind_transceiver": 0x00000009,
    "bind_transceiver_resp": 0x80000009,
    "outbind": 0x0000000B,
    "enquire_link": 0x00000015,
    "enquire_link_resp": 0x80000015,
    "submit_multi": 0x00000021,
    "submit_multi_resp": 0x80000021,
    "alert_notification": 0x00000102,
    "data_sm": 0x00000103,
    "data_sm_resp": 0x80000103,
}

SPEC_STATUSES = {
    "ESME_ROK": 0x00,
    "ESME_RINVMSGLEN": 0x01,
    "ESME_RINVCMDLEN": 0x02,
    "ESME_RINVCMDID": 0x03,
    "ESME_RINVBNDSTS": 0x04,
    "ESME_RALYBND": 0x05,
    "ESME_RINVPRTFLG": 0x06,
    "ESME_RINVREGDLVFLG": 0x07,
    "ESME_RSYSERR": 0x08,
    "ESME_RINVSRCADR": 0x0A,
    "ESME_RINVDSTADR": 0x0B,
    "ESME_RINVMSGID": 0x0C,
    "ESME_RBINDFAIL": 0x0D,
    "ESME_RINVPASWD": 0x0E,
    "ESME_RINVSYSID": 0x0F,
    "ESME_RCANCELFAIL": 0x11,
    "ESME_RREPLACEFAIL": 0x13,
    "ESME_RMSGQFUL": 0x14,
    "ESME_RINVSERTYP": 0x15,
    "ESME_RINVNUMDESTS": 0x33,
    "ESME_RINVDLNAME": 0x34,
    "ESME_RINVDESTFLAG": 0x40,
    "ESME_RINVSUBREP": 0x42,
    "ESME_RINVESMCLASS": 0x43,
    "ESME_RCNTSUBDL": 0x44,
    "ESME_RSUBMITFAIL": 0x45,
    "ESME_RINVSRCTON": 0x48,
    "ESME_RINVSRCNPI": 0x49,
    "ESME_RINVDSTTON": 0x50,
    "ESME_RINVDSTNPI": 0x51,
    "ESME_RINVSYSTYP": 0x53,
    "ESME_RINVREPFLAG": 0x54,
    "ESME_RINVNUMMSGS": 0x55,
    "ESME_RTHROTTLED": 0x58,
    "ESME_RINVSCHED": 0x61,
    "ESME_RINVEXPIRY": 0x62,
    "ESME_RINVDFTMSGID": 0x63,
    "ESME_RX_T_APPN": 0x64,
    "ESME_RX_P_APPN": 0x65,
    "ESME_RX_R_APPN": 0x66,
    "ESME_RQUERYFAIL": 0x67,
    "ESME_RINVOPTPARSTREAM": 0xC0,
    "ESME_ROPTPARNOTALLWD": 0xC1,
    "ESME_RINVPARLEN": 0xC2,
    "ESME_RMISSINGOPTPARAM": 0xC3,
    "ESME_RINVOPTPARAMVAL": 0xC4,
    "ESME_RDELIVERYFAILURE": 0xFE,
    "ESME_RUNKNOWNERR": 0xFF,
    "ESME_RINVDCS": 0x104,  # SMPP v5.0
}

# message_state (5.2.28) with the Appendix B `stat:` word of each.
SPEC_STATES = {
    1: ("ENROUTE", "ENROUTE"),
    2: ("DELIVERED", "DELIVRD"),
    3: ("EXPIRED", "EXPIRED"),
    4: ("DELETED", "DELETED"),
    5: ("UNDELIVERABLE", "UNDELIV"),
    6: ("ACCEPTED", "ACCEPTD"),
    7: ("UNKNOWN", "UNKNOWN"),
    8: ("REJECTED", "REJECTD"),
}


def test_command_ids_match_spec() -> None:
    assert {c.label: c.value for c in Command} == SPEC_COMMAND_IDS
    assert {value: Command(value) for value in SPEC_COMMAND_IDS.values()} == COMMAND_BY_ID


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.label)
def test_command_response(command: Command) -> None:
    is_response = command.label.endswith("_resp") or command.label == "generic_nack"
    assert command.is_response == is_response
    if is_response:
        assert command.response is None
    else:
        expected = SPEC_COMMAND_IDS.get(command.label + "_resp")
        assert (command.response.value if command.response else None) == expected


def test_commands_without_a_response() -> None:
    assert {c for c in Command if not c.is_response and c.response is None} == {
        Command.OUTBIND,
        Command.ALERT_NOTIFICATION,
    }


def test_bind_commands() -> None:
    assert {Command.BIND_TRANSMITTER, Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER} == BIND_COMMANDS


def test_status_codes_match_spec() -> None:
    assert {s.name: s.value for s in Status} == SPEC_STATUSES


def test_status_name() -> None:
    assert status_name(0) == "ESME_ROK"
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0x400) == "0x00000400"
    assert status_name(Status.ESME_RINVDSTADR) == "ESME_RINVDSTADR"
    # Every command_status of the spec by its spec name (the table is read by value).
    assert {status_name(value): value for value in SPEC_STATUSES.values()} == SPEC_STATUSES


@pytest.mark.parametrize("value", sorted(SPEC_STATES))
def test_stat_by_state_row(value: int) -> None:
    name, stat = SPEC_STATES[value]
    state = MessageState(value)
    assert state.name == name
    assert STAT_BY_STATE[state] == stat == state.stat
    assert len(stat) == 7


def test_stat_by_state_covers_every_state() -> None:
    assert set(STAT_BY_STATE) == set(MessageState)
    assert {s.value for s in MessageState} == set(SPEC_STATES)


@pytest.mark.parametrize("state", list(MessageState), ids=lambda s: s.name)
def test_final_and_failure_states(state: MessageState) -> None:
    intermediate = {MessageState.ENROUTE}  # v3.4 Appendix B: ACCEPTD is a final state
    failures = {
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.UNKNOWN,
        MessageState.REJECTED,
    }
    assert state.is_final == (state not in intermediate)
    assert state.is_failure == (state in failures)
