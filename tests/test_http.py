"""`http.listen` and `http.post`, against each other and against small servers, on loopback."""

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from adapters.io.http.listen import HttpListen
from adapters.io.http.post import HttpPost
from engine.node import AsyncSink, Batch, NodeContext
from engine.runtime import Runtime
from engine.spec import SINK, NodeSpec, params_schema
from tests.runtime_support import RECORDED, build, counted
from tests.runtime_support import test_registry as base_registry

# No test gets near this (under 1 s alone); it turns a hang into a failure, with room for a loaded CI machine.
LIMIT_S = 15.0


class Gated(AsyncSink):
    """A sink that writes only while its gate is open: a graph that stops keeping up."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.gate = asyncio.Event()
        RECORDED[ctx.name] = []

    async def write(self, batch: Batch) -> None:
        await self.gate.wait()
        RECORDED[self.ctx.name].extend(batch)


def registry():
    out = base_registry()
    out.register(NodeSpec(name="test.gated", kind=SINK, summary="test", params=params_schema({}),
                          factory=Gated))
    return out


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), LIMIT_S))


async def start(text: str, node: str = "ingest") -> tuple[Runtime, "asyncio.Task[bool]", HttpListen]:
    """Start a graph with an `http.listen` node on port 0; return once it listens."""
    runtime = build(text, registry())
    task = asyncio.ensure_future(runtime.run())
    listen = runtime.runners[node].impl
    assert isinstance(listen, HttpListen)
    while not listen.port and not task.done():
        await asyncio.sleep(0.002)
    return runtime, task, listen


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.002)


Answer = tuple[int, dict[str, object], dict[str, str]]  # status, JSON body, headers


async def post(url: str, body: object, headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = headers if raw is not None else {"Content-Type": "application/json", **(headers or {})}
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=headers or {}) as response:
        return response.status, await response.json(), dict(response.headers)


LISTEN_TO_RECORD = """
    version: 1
    nodes:
      ingest: {type: http.listen, with: {address: "127.0.0.1:0", path: /in%s}}
      got: {type: test.record, from: ingest}
    """


class Receiver:
    """A tiny HTTP server: answers from a script (status, headers, delay), records bodies."""

    def __init__(self, *answers: tuple[int, dict[str, str], float]) -> None:
        self.answers = list(answers)
        self.requests: list[web.Request] = []
        self.bodies: list[bytes] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        body = await request.read()
        status, headers, delay = self.answers.pop(0) if self.answers else (200, {}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if status < 300:
            self.bodies.append(body)
        return web.Response(status=status, headers=headers)

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/in", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/in"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def events(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for body in self.bodies:
            text = body.decode()
            out.extend(json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()])
        return out


def sender(url: str, count: int, extra: str = "", on_error: str = "drop") -> str:
    return f"""
        version: 1
        nodes:
          nums: {{type: test.numbers, with: {{count: {count}}}}}
          send:
            type: http.post
            from: nums
            on_error: {on_error}
            with: {{url: "{url}", backoff: 1ms{extra}}}
        """


@pytest.fixture
def warnings():
    """Lines logged to `headrace` (the CLI may have stopped them propagating to the root)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())
    handler = Collect(logging.WARNING)
    logger = logging.getLogger("headrace")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


# -- http.post -> http.listen -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_post_to_listen_delivers_every_event_in_order(fmt):
    async def test() -> None:
        receiving, receiving_task, listen = await start(LISTEN_TO_RECORD % ", token: s3cret")
        sending = build(sender(listen.url, 2500, f", format: {fmt}, batch_size: 300, "
                                                  "headers: {Authorization: Bearer s3cret}"), registry())
        assert await sending.run(), sending.failure
        await until(lambda: len(RECORDED["got"]) == 2500)
        receiving.request_stop()
        assert await receiving_task, receiving.failure
        assert [e["i"] for e in RECORDED["got"]] == list(range(2500))
        post_node = sending.runners["send"].impl
        assert isinstance(post_node, HttpPost)
        assert post_node.requests == 10  # batches of 1024, 1024, 452, in requests of at most 300
        assert sending.stats()["nodes"]["send"]["in"] == 2500  # type: ignore[index]
        assert receiving.stats()["nodes"]["ingest"]["out"] == 2500  # type: ignore[index]
        assert listen.rejected == 0
    run(test)


# -- http.listen answers ------------------------------------------------------------


def test_listen_answers_each_kind_of_request():
    async def test() -> None:
        runtime, task, listen = await start(LISTEN_TO_RECORD % ", token: s3cret, max_body_bytes: 200")
        url, auth = listen.url, {"Authorization": "Bearer s3cret"}
        ndjson = {**auth, "Content-Type": "application/x-ndjson"}

        async def answer(body: object, headers: dict[str, str], raw: bytes | None = None) -> tuple[int, object]:
            return (await post(url, body, headers, raw))[:2]
        unauthorized = (401, {"error": "unauthorized"})
        assert await answer({"a": 0}, {}) == unauthorized
        assert await answer({"a": 0}, {"Authorization": "Bearer wrong"}) == unauthorized
        assert await answer({"a": 0}, {"Authorization": "s3cret"}) == unauthorized
        assert await answer({"a": 0}, {"Authorization": "Basic s3cret"}) == unauthorized
        assert (await post(url, {"a": 0}, {}))[2]["WWW-Authenticate"] == "Bearer"
        assert (await post(url + "x", {"a": 0}, auth))[0] == 404
        async with aiohttp.ClientSession() as session, session.get(url, headers=auth) as response:
            assert (response.status, response.headers["Allow"]) == (405, "POST")
        assert await answer(None, ndjson, b'{"a": 0}\n\n{"a": 0\n{"a": 0}\n') == (
            400, {"error": "line 3: invalid JSON (Expecting ',' delimiter at column 8)"})
        assert await answer(None, ndjson, b'{"a": 0}\n[1]\n') == (
            400, {"error": "line 2: expected a JSON object, got list"})
        assert await answer([{"a": 0}, 5], auth) == (400, {"error": "element 1: expected a JSON object, got int"})
        assert await answer("text", auth) == (400, {"error": "expected a JSON object or an array of objects, got str"})
        assert await answer(None, auth, b"\xff") == (400, {"error": "the body is not UTF-8 (byte 0)"})
        assert await answer([{"pad": "x" * 200}], auth) == (413, {"error": "the body is larger than 200 bytes"})
        # Accepted: one object, an array, NDJSON by Content-Type, an empty array.
        assert await answer({"a": 1}, {"Authorization": "bearer s3cret"}) == (202, {"accepted": 1})  # any case
        assert await answer([{"a": 2}, {"a": 3}], auth) == (202, {"accepted": 2})
        assert await answer(None, ndjson, b'{"a": 4}\r\n\r\n{"a": 5}') == (202, {"accepted": 2})
        assert await answer([], auth) == (202, {"accepted": 0})
        runtime.request_stop()
        assert await task
        assert RECORDED["got"] == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}, {"a": 5}]
        assert listen.rejected == 13
    run(test)


def test_listen_format_param_applies_when_content_type_does_not_say():
    async def test() -> None:
        runtime, task, listen = await start(LISTEN_TO_RECORD % ", format: ndjson")
        form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
        assert (await post(listen.url, None, form, b'{"a": 1}\n{"a": 2}\n'))[:2] == (202, {"accepted": 2})
        assert (await post(listen.url, [{"a": 3}]))[:2] == (202, {"accepted": 1})  # application/json
        runtime.request_stop()
        assert await task
        assert RECORDED["got"] == [{"a": 1}, {"a": 2}, {"a": 3}]
    run(test)


def test_listen_port_in_use_is_one_clear_line():
    async def test() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            runtime = build((LISTEN_TO_RECORD % "").replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"'), registry())
            assert not await runtime.run()
        assert runtime.failure == (f"node 'ingest' (http.listen): cannot listen on 127.0.0.1:{port}: "
                                   "address already in use")
    run(test)


def test_listen_without_token_off_loopback_warns(warnings):
    async def test() -> None:
        runtime, task, _ = await start(LISTEN_TO_RECORD.replace("127.0.0.1:0", "0.0.0.0:0") % "")
        runtime.request_stop()
        assert await task
    run(test)
    assert warnings == ["node 'ingest' (http.listen): listening on 0.0.0.0:0 without a token: "
                        "anyone who can reach it can send events"]


# -- backpressure -----------------------------------------------------------------------

GATED = """
    version: 1
    nodes:
      ingest: {type: http.listen, with: {address: "127.0.0.1:0", queue_batches: 1%s}}
      out: {type: test.gated, from: {node: ingest, capacity: 1, policy: %s}}
    """


async def fill(runtime: Runtime, listen: HttpListen) -> tuple[list[int], "asyncio.Future[Answer]", Answer]:
    """Post {n} one at a time until one is refused: returns the accepted n's, the request
    left waiting in the queue, and the refusal."""
    source = runtime.runners[listen.ctx.name]
    accepted: list[int] = []
    waiting = None
    for n in range(10):
        request = asyncio.ensure_future(post(listen.url, {"n": n}))
        if waiting is None:
            # A full queue alone is not enough: `read()` may be about to take what was just
            # put. Once the source holds events the full edge refused, it reads nothing more
            # until the sink makes room, so what is queued then stays queued.
            await until(lambda request=request: request.done() or (listen.queue.full() and bool(source.backlog)))
            if not request.done():
                waiting = request
                continue
        await request
        answer = request.result()
        if answer[0] != 202:
            assert waiting is not None, answer
            return accepted, waiting, answer
        accepted.append(n)
    raise AssertionError("never refused")


def test_block_edge_full_answers_503_then_accepts_again():
    async def test() -> None:
        runtime, task, listen = await start(GATED % ("", "block"))
        accepted, waiting, refused = await fill(runtime, listen)
        status, body, headers = refused
        assert (status, headers["Retry-After"]) == (503, "1")
        assert body == {"error": "the graph is not keeping up; try again"}
        assert 1 <= len(accepted) <= 3  # one in the sink, one in the edge, one waiting for room
        gate = runtime.runners["out"].impl
        assert isinstance(gate, Gated)
        gate.gate.set()
        assert (await waiting)[:2] == (202, {"accepted": 1})
        assert (await post(listen.url, {"n": 100}))[:2] == (202, {"accepted": 1})
        runtime.request_stop()
        assert await task
        assert [e["n"] for e in RECORDED["out"]] == accepted + [len(accepted), 100]
        edge = runtime.stats()["edges"]["ingest->out"]
        assert edge["dropped"] == 0  # type: ignore[index]
    run(test)


def test_drop_edge_never_refuses_the_edge_policy_decides():
    async def test() -> None:
        runtime, task, listen = await start(GATED % ("", "drop_newest"))
        for n in range(20):
            assert (await post(listen.url, {"n": n}))[:2] == (202, {"accepted": 1})
        gate = runtime.runners["out"].impl
        assert isinstance(gate, Gated)
        gate.gate.set()
        runtime.request_stop()
        assert await task
        edge = runtime.stats()["edges"]["ingest->out"]
        assert edge["enqueued"] == 20 and edge["dropped"] == 20 - len(RECORDED["out"]) > 0  # type: ignore[index]
    run(test)


def test_request_not_taken_in_time_is_refused_and_not_kept():
    async def test() -> None:
        runtime, task, listen = await start(GATED % (", accept_timeout: 300ms", "block"))
        accepted, waiting, _ = await fill(runtime, listen)
        assert (await waiting)[:2] == (503, {"error": "the graph did not take the events in time; try again"})
        gate = runtime.runners["out"].impl
        assert isinstance(gate, Gated)
        gate.gate.set()
        runtime.request_stop()
        assert await task
        assert [e["n"] for e in RECORDED["out"]] == accepted
    run(test)


def test_graceful_stop_refuses_what_the_graph_did_not_take():
    async def test() -> None:
        runtime, task, listen = await start(GATED % ("", "block"))
        accepted, waiting, _ = await fill(runtime, listen)
        runtime.request_stop()
        gate = runtime.runners["out"].impl
        assert isinstance(gate, Gated)
        gate.gate.set()
        assert await task
        assert (await waiting)[:2] == (503, {"error": "the graph is stopping"})
        assert [e["n"] for e in RECORDED["out"]] == accepted  # every 202 was delivered, nothing else
    run(test)


# -- http.post against a scripted server ------------------------------------------------

UNAVAILABLE = (503, {}, 0.0)


def test_post_retries_until_the_server_recovers():
    async def test() -> None:
        async with Receiver(UNAVAILABLE, UNAVAILABLE) as receiver:
            runtime = build(sender(receiver.url, 5), registry())
            assert await runtime.run(), runtime.failure
        assert [e["i"] for e in receiver.events()] == [0, 1, 2, 3, 4]
        assert len(receiver.requests) == 3
        assert counted(runtime.stats()["nodes"]["send"], "in", "out", "errors") == {"in": 5, "out": 0, "errors": 0}
    run(test)


def test_post_gives_up_after_the_retries_and_drops(warnings):
    async def test() -> None:
        async with Receiver(*[UNAVAILABLE] * 3) as receiver:
            runtime = build(sender(receiver.url, 5, ", retries: 2"), registry())
            assert await runtime.run(), runtime.failure
            url = receiver.url
        assert len(receiver.requests) == 3 and receiver.bodies == []
        node = runtime.runners["send"].impl
        assert isinstance(node, HttpPost)
        assert node.failed_events == 5
        return url
    url = asyncio.run(asyncio.wait_for(test(), LIMIT_S))
    assert warnings == [f"node 'send' (http.post): POST {url} failed after 2 retries: 503 Service Unavailable; "
                        "5 events dropped"]


def test_post_on_error_stop_fails_the_run_with_one_line():
    async def test() -> None:
        async with Receiver(*[UNAVAILABLE] * 2) as receiver:
            runtime = build(sender(receiver.url, 5, ", retries: 1", on_error="stop"), registry())
            assert not await runtime.run()
            assert runtime.failure == (f"node 'send' (http.post): POST {receiver.url} failed after 1 retry: "
                                       "503 Service Unavailable")
    run(test)


def test_post_client_errors_are_final_at_once():
    async def test() -> None:
        async with Receiver((400, {}, 0.0)) as receiver:
            runtime = build(sender(receiver.url, 5), registry())
            assert await runtime.run()
        assert len(receiver.requests) == 1
    run(test)


def test_post_honours_retry_after():
    async def test() -> None:
        # The backoff alone would wait 10 s; the server asks for 0.
        async with Receiver((429, {"Retry-After": "0"}, 0.0)) as receiver:
            runtime = build(sender(receiver.url, 3).replace("backoff: 1ms", "backoff: 10s"), registry())
            assert await runtime.run()
        assert len(receiver.requests) == 2 and [e["i"] for e in receiver.events()] == [0, 1, 2]
    run(test)


def test_post_times_out_and_retries(warnings):
    async def test() -> None:
        async with Receiver((200, {}, 1.0), (200, {}, 1.0)) as receiver:
            runtime = build(sender(receiver.url, 2, ", timeout: 50ms, retries: 1"), registry())
            assert await runtime.run()
            return receiver.url
    url = asyncio.run(asyncio.wait_for(test(), LIMIT_S))
    assert warnings == [f"node 'send' (http.post): POST {url} failed after 1 retry: timed out after 50ms; "
                        "2 events dropped"]


def test_post_connection_refused(warnings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/in?key=secret"

    async def test() -> None:
        runtime = build(sender(url, 1, ", retries: 1"), registry())
        assert await runtime.run()
    run(test)
    assert warnings == [f"node 'send' (http.post): POST http://127.0.0.1:{port}/in failed after 1 retry: "
                        "cannot connect: connection refused; 1 events dropped"]


def test_runtime_retry_resumes_at_the_failed_request():
    async def test() -> None:
        ok = (200, {}, 0.0)
        async with Receiver(ok, UNAVAILABLE, UNAVAILABLE, ok, ok) as receiver:
            runtime = build(sender(receiver.url, 9, ", batch_size: 3, retries: 1",
                                   on_error="{action: retry, attempts: 2, backoff: 1ms}"), registry())
            assert await runtime.run(), runtime.failure
        assert [e["i"] for e in receiver.events()] == list(range(9))  # the first 3 sent once
        assert len(receiver.requests) == 5
    run(test)


def test_post_headers_and_content_type():
    async def test() -> None:
        async with Receiver() as receiver:
            runtime = build(sender(receiver.url, 2, ", format: ndjson, headers: {X-Team: data}"), registry())
            assert await runtime.run()
        request = receiver.requests[0]
        assert request.headers["Content-Type"] == "application/x-ndjson"
        assert request.headers["X-Team"] == "data"
        assert receiver.bodies == [b'{"i":0,"k":0,"n":1}\n{"i":1,"k":0,"n":1}\n']
    run(test)


@pytest.mark.parametrize("then", ["drop", "stop"])
def test_on_error_retry_tries_the_batch_again_then_applies_then(then):
    async def test() -> None:
        async with Receiver(*[UNAVAILABLE] * 3) as receiver:
            runtime = build(sender(receiver.url, 4, ", retries: 0",
                                   on_error=f"{{action: retry, attempts: 2, backoff: 1ms, then: {then}}}"), registry())
            assert await runtime.run() == (then == "drop")
            assert len(receiver.requests) == 3  # the first try, then the policy's 2 attempts
        node = runtime.runners["send"].impl
        assert isinstance(node, HttpPost)
        assert node.failed_events == (4 if then == "drop" else 0)
        if then == "stop":
            assert runtime.failure == f"node 'send' (http.post): POST {receiver.url} failed: 503 Service Unavailable"
    run(test)


def test_dead_letter_on_post_sends_each_failed_event_to_its_errors_port():
    async def test() -> str:
        async with Receiver((400, {}, 0.0)) as receiver:
            text = (sender(receiver.url, 2, on_error="dead_letter").rstrip()
                    + "\n          rejects: {type: test.record, from: send.errors}\n")
            runtime = build(text, registry())
            assert await runtime.run()
            assert counted(runtime.stats()["nodes"]["send"], "in", "out", "errors") == {"in": 2, "out": 2, "errors": 2}
            return receiver.url
    url = asyncio.run(asyncio.wait_for(test(), LIMIT_S))
    assert [(r["node"], r["error"], r["event"]["i"]) for r in RECORDED["rejects"]] == [
        ("send", f"POST {url} failed: 400 Bad Request", 0), ("send", f"POST {url} failed: 400 Bad Request", 1)]
