"""The callback intake (bridge/web.py on bridge/http_server.py) over real HTTP: what a connector is handed is a
plain `CallbackRequest` (method, path, query, headers, body, peer) and what it answers
goes back as it said; a body over the limit never reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bridge.config import parse_config
from bridge.core.message import Message
from bridge.core.ports import CallbackAnswer, CallbackRequest, Provider, SendResult
from bridge.http_server import HttpServer, Limits
from bridge.metrics import Metrics
from bridge.web import MAX_CALLBACK_BODY, make_routes
from tests.core.fakes import RecordingLog
from tests.support.providers import Reports

TOKEN = "intake-token-0123"


class Recorder(Provider):
    """A connector that keeps each callback request and answers 202 with a header."""

    kind = "simulator"

    def __init__(self) -> None:
        settings = parse_config({"providers": {"rec": {"type": "simulator"}}}).providers["rec"]
        super().__init__("rec", settings, Reports().context("http://127.0.0.1:9"))
        self.requests: list[CallbackRequest] = []

    async def send(self, message: Message) -> SendResult:
        raise AssertionError("not sent to")

    def callback_token(self) -> str | None:
        return TOKEN

    async def handle_callback(self, request: CallbackRequest) -> CallbackAnswer:
        self.requests.append(request)
        return CallbackAnswer(202, "taken", {"X-Seen": "1"})


@pytest.fixture
async def intake() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()

    async def ready() -> tuple[dict[str, bool], dict[str, str]]:
        return {}, {}

    routes = make_routes(Metrics(), {"rec": recorder}, ready, RecordingLog())
    server = HttpServer(routes, RecordingLog(), Limits(max_body=MAX_CALLBACK_BODY))
    port = await server.start("127.0.0.1", 0)
    yield recorder, f"http://127.0.0.1:{port}/callbacks/rec/{TOKEN}"
    await server.stop(grace=1)


async def test_a_callback_reaches_the_connector_as_plain_values(intake: tuple[Recorder, str]) -> None:
    recorder, url = intake
    body = b"id=a%3A1&status=DELIVRD"
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            url + "?id=first&id=second&x=1",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Custom": "v"},
        ) as response,
    ):
        assert response.status == 202
        assert await response.text() == "taken"
        assert response.headers["X-Seen"] == "1"
    [request] = recorder.requests
    assert (request.method, request.path, request.body, request.peer) == (
        "PUT",
        f"/callbacks/rec/{TOKEN}",
        body,
        "127.0.0.1",
    )
    assert dict(request.query) == {"id": "first", "x": "1"}  # the first value of a repeated parameter
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["x-custom"] == "v"  # names lower case
    assert request.form() == {"id": "a:1", "status": "DELIVRD"}


async def test_a_body_over_the_limit_never_reaches_the_connector(intake: tuple[Recorder, str]) -> None:
    recorder, url = intake
    async with aiohttp.ClientSession() as http, http.post(url, data=b"x" * (MAX_CALLBACK_BODY + 1)) as response:
        assert response.status == 413
    assert recorder.requests == []


async def test_a_wrong_token_never_reaches_the_connector(intake: tuple[Recorder, str]) -> None:
    recorder, url = intake
    async with aiohttp.ClientSession() as http, http.post(url.replace(TOKEN, "wrong"), data=b"{}") as response:
        assert response.status == 404
    assert recorder.requests == []
