"""SMPP v3.4 numbers: command ids, command_status codes, TLV tags, message states.

Everything here is data from the SMPP v3.4 specification (sections 5.1, 5.2, 5.3).
Other modules look names up here instead of spelling numbers out.
"""

from __future__ import annotations

from enum import IntEnum

RESPONSE_BIT = 0x80000000


class Command(IntEnum):
    """command_id values (spec 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def label(self) -> str:
        """The lower-case spec name (`submit_sm`), used in logs and metric labels."""
        return self.name.lower()

    @property
    def is_response(self) -> bool:
        return bool(self.value & RESPONSE_BIT)

    @property
    def response(self) -> Command | None:
        """The matching *_resp command, or None for commands that have none."""
        return _RESPONSE_OF.get(self)


COMMAND_BY_ID: dict[int, Command] = {c.value: c for c in Command}
# A table rather than Command(value | RESPONSE_BIT) per answer: the enum lookup costs
# a microsecond, on every response the session writes.
_RESPONSE_OF: dict[Command, Command] = {
    c: COMMAND_BY_ID[c.value | RESPONSE_BIT]
    for c in Command
    if not c.value & RESPONSE_BIT and c.value | RESPONSE_BIT in COMMAND_BY_ID
}

BIND_COMMANDS = frozenset({Command.BIND_TRANSMITTER, Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER})


class Status(IntEnum):
    """command_status values (spec 5.1.3) with the names operators search for."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF
    # Not in v3.4 but sent by newer SMSCs; v5.0 value, used for "data coding not supported".
    ESME_RINVDCS = 0x00000104


# By value: `Status(value).name` costs ~0.45 µs (the enum's lookup and its `name`
# descriptor), and a name is taken per message (its attempt's history, the receipt's).
_STATUS_NAMES: dict[int, str] = {status.value: status.name for status in Status}


def status_name(value: int) -> str:
    """`ESME_R*` name for a command_status; unknown values as hex, never an exception."""
    name = _STATUS_NAMES.get(value)
    return name if name is not None else f"0x{value:08X}"


class Tag(IntEnum):
    """Optional parameter (TLV) tags used by the bridge (spec 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class MessageState(IntEnum):
    """message_state values (spec 5.2.28) and their receipt `stat:` words."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def stat(self) -> str:
        """The 7-character `stat:` word of an Appendix B receipt."""
        return STAT_BY_STATE[self]

    @property
    def is_final(self) -> bool:
        """Every state but ENROUTE: Appendix B lists ACCEPTD among the final states
        (a provider's "accepted" is ENROUTE)."""
        return self is not MessageState.ENROUTE

    @property
    def is_failure(self) -> bool:
        return self in FAILURE_STATES


STAT_BY_STATE: dict[MessageState, str] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

FAILURE_STATES = frozenset(
    {
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.UNKNOWN,
        MessageState.REJECTED,
    }
)

# type_of_number (spec 5.2.5) and numbering_plan_indicator (5.2.6) values; every other
# value is reserved (ESME_RINVSRCTON / RINVSRCNPI / RINVDSTTON / RINVDSTNPI).
TON_VALUES = frozenset({0, 1, 2, 3, 4, 5, 6})
NPI_VALUES = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})

# protocol_id (spec 5.2.13 -> 3GPP TS 23.040 9.2.3.9) values that are an ordinary
# SMS: bits 7-5 = 000, "no interworking, SME-to-SME protocol". Telematic interworking
# (0x20-0x3F), Short Message Type 0 (0x40), Replace Short Message Type 1-7 (0x41-0x47),
# Return Call, ME/SIM data download (0x5E-0x7F) and the reserved / SC-specific values
# cannot be sent faithfully by an HTTP SMS API.
PLAIN_PROTOCOL_IDS = frozenset(range(0x20))

# esm_class bits (spec 5.2.12)
ESM_CLASS_UDHI = 0x40
ESM_CLASS_REPLY_PATH = 0x80
ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
ESM_CLASS_MESSAGE_TYPE_MASK = 0x3C

# registered_delivery bits (spec 5.2.17)
REGISTERED_DELIVERY_RECEIPT_MASK = 0x03
RECEIPT_NONE = 0x00
RECEIPT_ALWAYS = 0x01
RECEIPT_ON_FAILURE = 0x02
REGISTERED_DELIVERY_INTERMEDIATE = 0x10

INTERFACE_VERSION_34 = 0x34
