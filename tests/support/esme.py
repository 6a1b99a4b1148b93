"""A test ESME on top of the real smpplib client.

smpplib reads one PDU at a time from a blocking socket; `Esme` adds what tests
need: answers matched to requests by sequence number, receipts collected as they
arrive (and acknowledged with a chosen status), and waits that block on the socket
with a deadline instead of sleeping.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.pdu
import smpplib.smpp

from bridge.smpp.pdu import Pdu, SubmitSm, decode_pdu, encode_pdu
from bridge.smpp.receipt import parse_receipt


def raw_submits(first_sequence: int, count: int, **params: Any) -> bytes:
    """`count` submit_sm (to 4917012345 from "1" unless `params` say otherwise) with
    sequence numbers from `first_sequence`, as one chunk of bytes: what a client with
    that many in its window writes at once."""
    fields = {"source_addr": "1", "dest_addr_ton": 1, "destination_addr": "4917012345", **params}
    return b"".join(encode_pdu(SubmitSm(first_sequence + i, **fields)) for i in range(count))


class Esme:
    def __init__(
        self, port: int, host: str = "127.0.0.1", timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.client = smpplib.client.Client(
            host, port, timeout=timeout, allow_unknown_opt_params=True, ssl_context=ssl_context
        )
        self.timeout = timeout
        self.responses: dict[int, Any] = {}
        self._raw_stash: dict[int, bytes] = {}
        self.delivered: list[Any] = []
        self.enquire_links = 0
        self.unbinds = 0
        self.deliver_sm_status: Callable[[Any], int] = lambda pdu: 0
        # When set: the exact bytes to answer a deliver_sm with (a generic_nack, a
        # wrong response ...), given the deliver_sm's sequence number.
        self.deliver_sm_answer: Callable[[int], bytes] | None = None
        try:
            self.client.connect()
        except Exception:
            self.client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED  # quiet smpplib's __del__ warning
            raise

    # -- binding ---------------------------------------------------------------------

    def bind(self, kind: str = "transceiver", system_id: str = "esme1", password: str = "secret1", **extra: Any) -> Any:
        """Send a bind and return its response PDU (errors included, not raised)."""
        pdu = smpplib.smpp.make_pdu(f"bind_{kind}", client=self.client, system_id=system_id, password=password)
        for name, value in extra.items():  # smpplib resets interface_version after its kwargs
            setattr(pdu, name, value)
        self._send(pdu)
        return self.wait_response(pdu.sequence)

    # -- requests --------------------------------------------------------------------

    def submit(self, destination: str = "4917012345", text: bytes = b"Hello", source: str = "12345", **kw: Any) -> Any:
        """submit_sm; returns submit_sm_resp (whatever its status)."""
        params = {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": source,
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": destination,
            "short_message": text,
            "data_coding": 0,
            "registered_delivery": 1,
        }
        params.update(kw)
        pdu = smpplib.smpp.make_pdu("submit_sm", client=self.client, **params)
        self._send(pdu)
        return self.wait_response(pdu.sequence)

    def send(self, command: str, **params: Any) -> Any:
        pdu = smpplib.smpp.make_pdu(command, client=self.client, **params)
        self._send(pdu)
        return self.wait_response(pdu.sequence)

    def _send(self, pdu: Any) -> None:
        """Write a PDU without smpplib's client-side state check: tests send PDUs in
        the wrong state on purpose."""
        self.client._socket.sendall(pdu.generate())

    def exchange(self, pdu: Pdu, timeout: float | None = None) -> Pdu:
        """Send a PDU built with our codec (for commands smpplib lacks: cancel_sm,
        replace_sm, submit_multi, broken PDUs) and return the answer decoded by our
        codec; other PDUs read meanwhile are dispatched as usual."""
        self.send_raw(encode_pdu(pdu))
        return self.read_raw_until(pdu.sequence, timeout)

    def read_raw_until(self, sequence: int, timeout: float | None = None) -> Pdu:
        return decode_pdu(self.read_frame_until(sequence, timeout))

    def exchange_bytes(self, pdu: Pdu, timeout: float | None = None) -> bytes:
        """`exchange`, returning the answer's exact bytes (for byte-level assertions)."""
        self.send_raw(encode_pdu(pdu))
        return self.read_frame_until(pdu.sequence, timeout)

    def read_frame_until(self, sequence: int, timeout: float | None = None) -> bytes:
        """The frame (undecoded) that carries `sequence`; others read meanwhile are
        dispatched (requests) or kept for their own read (answers)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        sock = self.client._socket
        if sequence in self._raw_stash:
            return self._raw_stash.pop(sequence)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to sequence {sequence}")
            sock.settimeout(remaining)
            try:
                header = self._recv_exact(16)
                frame = header + self._recv_exact(int.from_bytes(header[:4], "big") - 16)
            finally:
                sock.settimeout(self.timeout)
            frame_sequence = int.from_bytes(frame[12:16], "big")
            if frame_sequence == sequence:
                return frame
            if frame[4] & 0x80:  # another answer: keep it for its own read_raw_until
                self._raw_stash[frame_sequence] = frame
            else:
                self._dispatch(smpplib.smpp.parse_pdu(frame, client=self.client, allow_unknown_opt_params=True))

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.client._socket.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed by peer")
            data += chunk
        return data

    def send_raw(self, data: bytes) -> None:
        self.client._socket.sendall(data)

    # -- reading ---------------------------------------------------------------------

    def read_one(self, deadline: float) -> Any | None:
        """Read and dispatch one PDU; None when the deadline passed first."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.client._socket.settimeout(remaining)
        try:
            pdu = self.client.read_pdu()
        except TimeoutError:
            return None
        finally:
            self.client._socket.settimeout(self.timeout)
        self._dispatch(pdu)
        return pdu

    def _dispatch(self, pdu: Any) -> None:
        command = pdu.command
        if command == "deliver_sm":
            self.delivered.append(pdu)
            if self.deliver_sm_answer is not None:
                self.send_raw(self.deliver_sm_answer(pdu.sequence))
                return
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.client, status=self.deliver_sm_status(pdu))
            resp.sequence = pdu.sequence
            self._send(resp)
        elif command == "enquire_link":
            self.enquire_links += 1
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=self.client)
            resp.sequence = pdu.sequence
            self._send(resp)
        elif command == "unbind":
            self.unbinds += 1
            resp = smpplib.smpp.make_pdu("unbind_resp", client=self.client)
            resp.sequence = pdu.sequence
            self._send(resp)
        else:
            self.responses[pdu.sequence] = pdu

    def wait_response(self, sequence: int, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        while sequence not in self.responses:
            if self.read_one(deadline) is None and time.monotonic() >= deadline:
                raise TimeoutError(f"no response to sequence {sequence}")
        return self.responses.pop(sequence)

    def wait_until(self, condition: Callable[[], bool], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not condition():
            if self.read_one(deadline) is None and time.monotonic() >= deadline:
                raise TimeoutError("condition not met")

    def wait_receipts(self, count: int, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for `count` receipts; returns them parsed (text fields plus TLVs)."""
        self.wait_until(lambda: len(self.receipts()) >= count, timeout)
        return self.receipts()

    def receipts(self) -> list[dict[str, Any]]:
        out = []
        for pdu in self.delivered:
            if not pdu.esm_class & 0x04:
                continue
            fields = parse_receipt(pdu.short_message.decode("ascii")) or {}
            fields["raw"] = pdu.short_message
            fields["receipted_message_id"] = pdu.receipted_message_id
            fields["message_state"] = pdu.message_state
            fields["esm_class"] = pdu.esm_class
            fields["source_addr"] = pdu.source_addr
            fields["destination_addr"] = pdu.destination_addr
            out.append(fields)
        return out

    def assert_no_deliver_sm(self, settle: float = 0.5) -> None:
        """Absence of deliver_sm, checked by reading: an enquire_link round trip (all
        the bridge wrote before its answer is read by then), then `settle` seconds
        more of reading. Fails if this session ever got a deliver_sm."""
        assert self.send("enquire_link").status == 0
        deadline = time.monotonic() + settle
        while self.read_one(deadline) is not None:
            pass
        assert self.delivered == [], f"unexpected deliver_sm: {[pdu.short_message for pdu in self.delivered]}"

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.read_one(deadline) is None:
                    return False
        except (smpplib.exceptions.ConnectionError, ConnectionError, OSError):
            return True
        return False

    def unbind(self) -> Any:
        return self.send("unbind")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client._socket.close()
        self.client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED
