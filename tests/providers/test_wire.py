"""The lean HTTP client against real servers on 127.0.0.1: keep-alive, chunked and
closing answers, HTTPS, and every way a request can fail, classified."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.core.ports import Outcome
from bridge.providers.http import HttpAnswer, HttpClient
from bridge.providers.wire import AnswerLost, ConnectFailed, WireClient
from tests.support.certs import make_certificate


async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_keep_alive_reuses_one_connection_for_many_requests() -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server, port = await raw_server(handle)
    client = WireClient(5, 5, 4)
    try:
        for _ in range(20):
            status, _, body = await client.request("POST", f"http://127.0.0.1:{port}/x", b"{}", "application/json")
            assert (status, body) == (200, b"ok")
        assert connections == 1
    finally:
        client.close()
        server.close()


async def test_chunked_and_connection_close_answers() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server, port = await raw_server(handle)
    client = WireClient(5, 5, 4)
    try:
        for _ in range(3):  # each answer closes: a new connection every time
            status, headers, body = await client.request("GET", f"http://127.0.0.1:{port}/")
            assert (status, body) == (201, b"abcde")
            assert headers["Transfer-Encoding"] == "chunked"
    finally:
        client.close()
        server.close()


async def test_refused_connection_is_connect_failed() -> None:
    server, port = await raw_server(lambda r, w: None)
    server.close()
    await server.wait_closed()
    client = WireClient(5, 5, 4)
    with pytest.raises(ConnectFailed):
        await client.request("GET", f"http://127.0.0.1:{port}/")


async def test_no_answer_in_time_is_answer_lost() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        await asyncio.sleep(5)

    server, port = await raw_server(handle)
    client = WireClient(0.2, 5, 4)
    try:
        with pytest.raises(AnswerLost, match="timeout"):
            await client.request("POST", f"http://127.0.0.1:{port}/", b"x")
    finally:
        client.close()
        server.close()


async def test_a_request_past_its_deadline_closes_its_connection_and_the_next_one_uses_a_new_one() -> None:
    """The read deadline fails the request with AnswerLost and the connection is
    dropped (a late answer must never be read as the next request's)."""
    connections: list[asyncio.Event] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        closed = asyncio.Event()
        connections.append(closed)
        await reader.readuntil(b"\r\n\r\n")
        if len(connections) == 1:  # the first never answers; it sees the client hang up
            if await reader.read(100) == b"":
                closed.set()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server, port = await raw_server(handle)
    client = WireClient(0.2, 5, 4)
    try:
        with pytest.raises(AnswerLost, match="read timeout"):
            await client.request("GET", f"http://127.0.0.1:{port}/")
        await asyncio.wait_for(connections[0].wait(), 10)
        assert (await client.request("GET", f"http://127.0.0.1:{port}/"))[0] == 200
        assert len(connections) == 2
    finally:
        client.close()
        server.close()


async def test_each_request_in_flight_fails_at_its_own_deadline_and_answered_ones_are_untouched() -> None:
    """One timer serves the deadlines of all the requests in flight: requests on
    several connections that get no answer each fail with AnswerLost, one answered
    meanwhile keeps its answer, and a request after they all ended still has a
    deadline (the timer is armed again)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            if head.startswith(b"GET /slow"):
                await reader.read(100)  # never answered; returns when the client hangs up
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server, port = await raw_server(handle)
    client = WireClient(0.3, 5, 8)
    url = f"http://127.0.0.1:{port}"
    try:
        slow_first = asyncio.ensure_future(client.request("GET", f"{url}/slow"))
        fast = asyncio.ensure_future(client.request("GET", f"{url}/fast"))
        slow_second = asyncio.ensure_future(client.request("GET", f"{url}/slow"))
        results = await asyncio.gather(slow_first, fast, slow_second, return_exceptions=True)
        assert isinstance(results[0], AnswerLost) and "read timeout" in str(results[0])
        assert results[1] == (200, {"Content-Length": "2"}, b"ok")
        assert isinstance(results[2], AnswerLost) and "read timeout" in str(results[2])
        with pytest.raises(AnswerLost, match="read timeout"):
            await client.request("GET", f"{url}/slow")
        assert (await client.request("GET", f"{url}/fast"))[2] == b"ok"
    finally:
        client.close()
        server.close()


async def test_a_cancelled_request_is_cancelled_and_its_connection_closed() -> None:
    """Cancelling the task awaiting an answer cancels it (never turned into a timeout
    or swallowed) and drops the connection."""
    arrived, hung_up = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        if await reader.read(100) == b"":
            hung_up.set()

    server, port = await raw_server(handle)
    client = WireClient(30, 5, 4)
    try:
        request = asyncio.ensure_future(client.request("GET", f"http://127.0.0.1:{port}/"))
        await asyncio.wait_for(arrived.wait(), 10)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait_for(hung_up.wait(), 10)
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(
    "answer",
    [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b""],
    ids=["not-http", "cut-short", "closed"],
)
async def test_broken_answers_are_answer_lost(answer: bytes) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server, port = await raw_server(handle)
    client = WireClient(5, 5, 4)
    try:
        with pytest.raises(AnswerLost):
            await client.request("GET", f"http://127.0.0.1:{port}/")
    finally:
        client.close()
        server.close()


async def test_at_most_max_connections_at_once() -> None:
    in_flight = 0
    most = 0
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most >= 3:
            release.set()
        await release.wait()
        in_flight -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = WireClient(5, 5, 3)
    try:
        results = await asyncio.gather(*(client.request("GET", str(server.make_url("/"))) for _ in range(10)))
        assert [status for status, _, _ in results] == [200] * 10
        assert most == 3
    finally:
        client.close()
        await server.close()


async def test_https(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def api(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api", api)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    client = HttpClient(5, 5, 2)
    client._wire._ssl = ssl.create_default_context(cafile=str(cert))  # trust the test certificate
    try:
        answer = await client.request("POST", f"https://127.0.0.1:{port}/api", json={"a": 1})
        assert isinstance(answer, HttpAnswer) and answer.json() == {"ok": True}
    finally:
        await client.close()
        await runner.cleanup()


async def test_http_client_classifies_transport_failures() -> None:
    server, port = await raw_server(lambda r, w: None)
    server.close()
    await server.wait_closed()
    client = HttpClient(5, 5, 2)
    refused = await client.request("POST", f"http://127.0.0.1:{port}/", json={})
    assert not isinstance(refused, HttpAnswer) and refused.outcome is Outcome.NOT_SENT


async def test_closing_the_client_mid_request_lets_the_request_finish_then_closes_its_connection() -> None:
    """A provider replaced by a reload is closed while a request may still run: the
    answer still arrives, and the connection is closed once released (never put back
    into a pool nobody will close)."""
    arrived, answer, gone = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)  # the body, "{}"
        arrived.set()
        await answer.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # keep-alive
        await writer.drain()
        if await reader.read(1) == b"":  # the client closed its side
            gone.set()

    server, port = await raw_server(handle)
    client = WireClient(5, 5, 4)
    try:
        request = asyncio.ensure_future(client.request("POST", f"http://127.0.0.1:{port}/x", b"{}"))
        await asyncio.wait_for(arrived.wait(), 10)
        client.close()  # the request is under way
        assert not gone.is_set()
        answer.set()
        assert (await asyncio.wait_for(request, 10))[0] == 200
        await asyncio.wait_for(gone.wait(), 10)
        with pytest.raises(ConnectFailed):  # a closed client sends nothing more
            await client.request("POST", f"http://127.0.0.1:{port}/x", b"{}")
    finally:
        server.close()
