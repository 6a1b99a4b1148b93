"""The answer rules all connectors share (bridge/providers/http.py): HTTP statuses
that refuse, the SendResult of an error-table row, and what an answer none of a
provider's documented shapes matched means. Each connector's own shapes are tested
in its own test module."""

from __future__ import annotations

import pytest

from bridge.core.ports import Outcome
from bridge.providers.http import (
    CREDENTIALS_REFUSED,
    RequestWindow,
    refusal,
    refused_by_status,
    retry_after,
    undocumented_answer,
)
from bridge.smpp.constants import Status
from tests.support.providers import answer


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "12"}, 12.0),
        ({"retry-after": " 3 "}, 3.0),
        ({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}, 40.0),  # an HTTP-date, 40 s after `now`
        ({"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),  # in the past: now
        ({"Retry-After": "soon"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, now=60.0) == seconds


@pytest.mark.parametrize(
    ("http", "status", "metric"),
    [
        (429, Status.ESME_RTHROTTLED, "throttled"),
        (500, Status.ESME_RSYSERR, "error"),
        (502, Status.ESME_RSYSERR, "error"),
        (503, Status.ESME_RSYSERR, "error"),
    ],
)
def test_429_and_5xx_are_refused_whatever_the_body(http: int, status: Status, metric: str) -> None:
    result = refused_by_status(answer(http, {"status": True}, {"Retry-After": "5"}))
    assert result is not None
    assert (result.outcome, result.status, result.metric, result.retry_after) == (Outcome.NOT_SENT, status, metric, 5.0)


@pytest.mark.parametrize("http", [200, 202, 301, 400, 401, 403, 404, 422])
def test_other_statuses_are_not_refused_by_status(http: int) -> None:
    assert refused_by_status(answer(http, "")) is None


@pytest.mark.parametrize(
    ("status", "outcome", "metric"),
    [
        (Status.ESME_RINVDSTADR, Outcome.REJECTED, "rejected"),
        (Status.ESME_RTHROTTLED, Outcome.REJECTED, "rejected"),
        (Status.ESME_RSYSERR, Outcome.NOT_SENT, "rejected"),  # the provider answered: not a transport error
        (Status.ESME_RX_T_APPN, Outcome.NOT_SENT, "rejected"),
        (Status.ESME_RTHROTTLED, Outcome.NOT_SENT, "throttled"),
    ],
)
def test_refusal(status: Status, outcome: Outcome, metric: str) -> None:
    result = refusal(status, outcome, "E123")
    assert (result.outcome, result.status, result.metric, result.reason) == (outcome, status, metric, "E123")
    assert result.provider_ids == () and result.retry_after is None


# HTTP status -> (outcome, command_status, upstream_requests metric) of an answer in no documented shape.
UNDOCUMENTED = {
    200: (Outcome.UNKNOWN, Status.ESME_RSYSERR, "error"),  # it read the request: never sent again
    201: (Outcome.UNKNOWN, Status.ESME_RSYSERR, "error"),
    202: (Outcome.UNKNOWN, Status.ESME_RSYSERR, "error"),
    204: (Outcome.UNKNOWN, Status.ESME_RSYSERR, "error"),
    301: (Outcome.REJECTED, Status.ESME_RSUBMITFAIL, "rejected"),
    400: (Outcome.REJECTED, Status.ESME_RSUBMITFAIL, "rejected"),
    401: (Outcome.NOT_SENT, Status.ESME_RSYSERR, "rejected"),  # our credentials: another provider may send it
    403: (Outcome.NOT_SENT, Status.ESME_RSYSERR, "rejected"),
    404: (Outcome.REJECTED, Status.ESME_RSUBMITFAIL, "rejected"),
    422: (Outcome.REJECTED, Status.ESME_RSUBMITFAIL, "rejected"),
    429: (Outcome.NOT_SENT, Status.ESME_RTHROTTLED, "throttled"),
    500: (Outcome.NOT_SENT, Status.ESME_RSYSERR, "error"),
    503: (Outcome.NOT_SENT, Status.ESME_RSYSERR, "error"),
}


@pytest.mark.parametrize(("http", "expected"), sorted(UNDOCUMENTED.items()))
@pytest.mark.parametrize("body", ["", "not json", "<html>down</html>", {"something": "else"}])
def test_undocumented_answer(http: int, expected: tuple[Outcome, Status, str], body: object) -> None:
    result = undocumented_answer(answer(http, body), "acme")
    assert (result.outcome, result.status, result.metric) == expected
    assert result.provider_ids == ()
    assert f"HTTP {http}" in result.reason
    assert result.reason.startswith("acme: ") or refused_by_status(answer(http, body)) is not None


def test_credentials_refused_are_not_sent() -> None:
    for http in sorted(CREDENTIALS_REFUSED):
        assert UNDOCUMENTED[http][:2] == (Outcome.NOT_SENT, Status.ESME_RSYSERR)


# -- the request window ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_window_never_lets_more_than_the_limit_start_in_any_window() -> None:
    """3 requests in any 10 s; each holds its place until 10 s after its answer."""
    clock = FakeClock()
    window = RequestWindow(3, 10.0, clock)
    for _ in range(3):
        assert window.delay() == 0.0
        await window.acquire()  # no wait: a place is free
    assert window.delay() is None  # all three still wait for their answers
    clock.now = 1002.0
    window.release()  # the first answer came at 1002 ...
    assert window.delay() == 10.0  # ... so its place is free at 1012, not before
    window.release()
    window.release()
    assert window.delay() == 10.0
    clock.now = 1011.999
    assert window.delay() == pytest.approx(0.001)
    clock.now = 1012.0
    assert window.delay() == 0.0
    await window.acquire()
    assert window.delay() == 0.0  # the other two were answered at 1002 as well: two more may start
    await window.acquire()
    await window.acquire()
    assert window.delay() is None
