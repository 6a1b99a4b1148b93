"""Per-PDU cost of the codec on the hot path: `python -m tests.bench.codec`.

Decodes a submit_sm (plain, and with the three SAR TLVs) and the one-NUL
deliver_sm_resp an ESME answers a receipt with; encodes a submit_sm_resp and a
receipt's deliver_sm. Prints the best of 7 runs of 200,000 each, in microseconds.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from bridge.smpp.constants import Command, MessageState, Tag
from bridge.smpp.pdu import SubmitSm, SubmitSmResp, decode_pdu, encode_pdu, encode_response
from bridge.smpp.receipt import receipt_deliver_sm

SUBMIT = SubmitSm(
    7,
    source_addr_ton=5,
    source_addr="BANK",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="4917012345678",
    registered_delivery=1,
    short_message=b"Your verification code is 123456",
)
SAR: dict[int, bytes] = {
    Tag.SAR_MSG_REF_NUM: b"\x00\x01",
    Tag.SAR_TOTAL_SEGMENTS: b"\x02",
    Tag.SAR_SEGMENT_SEQNUM: b"\x01",
}
SUBMIT_BYTES = encode_pdu(SUBMIT)
SUBMIT_SAR_BYTES = encode_pdu(SubmitSm(7, 0, SAR, **{f: getattr(SUBMIT, f) for f in ("source_addr", "short_message")}))
DELIVER_SM_RESP = bytes.fromhex("00000011 80000005 00000000 00000001 00")
RECEIPT_FIELDS = ("4711", MessageState.DELIVERED, 0.0, 60.0, 0, "hello", (1, 1, "4917012345678"), (5, 0, "BANK"))

CASES: dict[str, Callable[[], object]] = {
    "decode submit_sm": lambda: decode_pdu(SUBMIT_BYTES),
    "decode submit_sm + 3 SAR TLVs": lambda: decode_pdu(SUBMIT_SAR_BYTES),
    "decode deliver_sm_resp": lambda: decode_pdu(DELIVER_SM_RESP),
    "encode submit_sm_resp": lambda: encode_response(Command.SUBMIT_SM, 7, 0, SubmitSmResp(message_id="4711")),
    # A receipt's body is encoded as it is built (an EncodedRequest); the session numbers it.
    "encode deliver_sm receipt": lambda: receipt_deliver_sm(*RECEIPT_FIELDS).encode(9),
}


def main() -> None:
    number = 200_000
    for name, case in CASES.items():
        best = min(timeit.repeat(case, number=number, repeat=7)) / number
        print(f"{name:32s} {best * 1e6:6.2f} µs")


if __name__ == "__main__":
    main()
