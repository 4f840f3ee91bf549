"""`http.listen`: an aiohttp server on the graph's event loop; each POST becomes one batch.

A request is answered only once its events are in the graph or refused as a whole:

- The body is read (at most `max_body_bytes`) and parsed completely first; one bad line
  or element refuses the request (400) and nothing from it is kept.
- The parsed events are queued for `read()` with `put_nowait` on a small bounded queue.
  A full queue means the graph is not keeping up (a `block` edge downstream is full):
  the answer is 503 with `Retry-After`, and nothing is buffered beyond the queue.
- 202 is sent when `read()` has handed the events to the graph. From then on a graceful
  stop drains them like any other event. A request still queued when the node stops, or
  not taken within `accept_timeout`, is answered 503 and its events are discarded: a 202
  always means "in the graph", a 503 always means "send it again".
- When an output edge is durable, 202 waits until the events are committed to it (the
  runtime's `handed_on`, after the edge's transaction): a 202 then survives `kill -9`.
  Once taken, a request waits for that commit, however long the edge pushes back; if the
  graph fails or is interrupted first it is answered 503 (some of its events may have
  been committed: sending it again can repeat them, at least once).
"""

import asyncio
import hmac
import ipaddress
import json
import logging
import os
from typing import Final

from aiohttp import web

from adapters.io.formats import BadRecord, decode_jsonl
from adapters.io.http.params import ACCEPT_TIMEOUT, JSON, NDJSON, HttpListenParams, seconds
from engine.node import AsyncSource, Batch, Failures, NodeContext, NodeFailure
from engine.params import expect

LOG: Final = logging.getLogger("headrace")

NDJSON_TYPES: Final = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl",
    "application/x-jsonlines", "application/jsonlines",
})
RETRY_AFTER_S: Final = "1"
SHUTDOWN_TIMEOUT_S: Final = 5.0


class BadBody(Exception):
    """The request body cannot be taken; the message is one line for the client."""


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; the schema has already checked the form."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def body_format(content_type: str, configured: str) -> str:
    """JSON and NDJSON media types decide; anything else (curl's form default, text/plain,
    no header) means the node's `format`."""
    if content_type in NDJSON_TYPES:
        return NDJSON
    if content_type == "application/json" or content_type.endswith("+json"):
        return JSON
    return configured


def parse_body(body: bytes, fmt: str) -> Batch:
    """Every event of a body, or BadBody naming the first problem (line or element)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"the body is not UTF-8 (byte {exc.start})") from exc
    text = text.removeprefix("\ufeff")
    if fmt == NDJSON:
        events: Batch = []
        for number, line in enumerate(text.split("\n"), start=1):
            record = decode_jsonl(line, number)
            if isinstance(record, BadRecord):
                raise BadBody(record.message())
            if record is not None:
                events.append(record)
        return events
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadBody(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise BadBody(f"expected a JSON object or an array of objects, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadBody(f"element {index}: expected a JSON object, got {type(item).__name__}")
    return value


def _answer(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _busy(why: str) -> web.Response:
    return _answer(503, {"error": why}, {"Retry-After": RETRY_AFTER_S})


class _Delivery:
    """One request's events on their way to `read()`. `taken` resolves True when the
    graph took them (behind a durable edge: committed them), False when the node stopped
    first."""

    def __init__(self, events: Batch, taken: "asyncio.Future[bool]") -> None:
        self.events = events
        self.taken = taken
        self.withdrawn = False  # the request gave up (timeout, client gone): skip it
        self.committing = False  # read, waiting for the durable edge's commit


class HttpListen(AsyncSource):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, HttpListenParams)
        self.address = params.address
        self.host, self.requested_port = parse_address(self.address)
        self.path = params.path
        self.format = params.format
        self.token = params.token.encode() if params.token is not None else None
        self.max_body_bytes = params.max_body_bytes
        self.queue: asyncio.Queue[_Delivery] = asyncio.Queue(params.queue_batches)
        self.accept_timeout_s = seconds(params.accept_timeout, ACCEPT_TIMEOUT)
        self.runner: web.AppRunner | None = None
        self.accepting = False
        self.port = 0  # the bound port once open (the real one when `address` asks for 0)
        self.url = ""
        self.rejected = 0  # requests answered 4xx/5xx, for tests and debugging
        self.committing: list[_Delivery] = []  # read, answered once their commit is done

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    async def open(self) -> None:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # No access log (a line per request); handlers stop when their client goes away.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.requested_port).start()
        except OSError as exc:
            await runner.cleanup()
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise NodeFailure(f"{self.where()}: cannot listen on {self.address}: {reason}") from exc
        self.runner = runner
        self.port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}{self.path}"
        self.accepting = True
        place = {"graph": self.ctx.graph, "node": self.ctx.name}
        LOG.info("%s: listening on %s", self.where(), self.url, extra=place)
        if self.token is None and not is_loopback(self.host):
            LOG.warning("%s: listening on %s without a token: anyone who can reach it can send events",
                        self.where(), self.address, extra=place)

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Compared in constant time whatever the scheme, so timing tells nothing either.
        matches = hmac.compare_digest(given.strip().encode(), self.token)
        return matches and scheme.lower() == "bearer"

    async def handle(self, request: web.Request) -> web.Response:
        response = await self._handle(request)
        if response.status >= 400:
            self.rejected += 1
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path != self.path:
            return _answer(404, {"error": "not found"})
        if request.method != "POST":
            return _answer(405, {"error": "method not allowed; use POST"}, {"Allow": "POST"})
        if not self._authorized(request):
            return _answer(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        too_large = _answer(413, {"error": f"the body is larger than {self.max_body_bytes} bytes"})
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return too_large
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large
        try:
            events = parse_body(body, body_format(request.content_type, self.format))
        except BadBody as exc:
            return _answer(400, {"error": str(exc)})
        if not events:
            return _answer(202, {"accepted": 0})
        if not self.accepting:
            return _busy("the graph is stopping")
        delivery = _Delivery(events, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(delivery)
        except asyncio.QueueFull:
            return _busy("the graph is not keeping up; try again")
        try:
            await asyncio.wait({delivery.taken}, timeout=self.accept_timeout_s)
            if delivery.committing:  # read: the timeout is over, the commit is what is left
                await asyncio.wait({delivery.taken})
        finally:
            # Timed out or the client went away (the handler is cancelled): `read()` skips
            # it. Nothing can run between the check and the mark, so it is one or the other.
            if not delivery.taken.done():
                delivery.withdrawn = True
        if delivery.taken.done() and delivery.taken.result():
            return _answer(202, {"accepted": len(events)})
        if delivery.taken.done():
            return _busy("the graph is stopping")
        return _busy("the graph did not take the events in time; try again")

    def _take(self, delivery: _Delivery, out: Batch) -> None:
        if delivery.withdrawn:
            return
        out.extend(delivery.events)
        if self.durable_outputs:
            delivery.committing = True
            self.committing.append(delivery)
        else:
            delivery.taken.set_result(True)

    def handed_on(self) -> None:
        """The last batch is committed to the durable edges: its requests get their 202."""
        for delivery in self.committing:
            if not delivery.taken.done():
                delivery.taken.set_result(True)
        self.committing = []

    def done_reading(self) -> None:
        self._stop_accepting()

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        out = outs[0]
        try:
            while not out:
                self._take(await self.queue.get(), out)
        except asyncio.CancelledError:
            self._stop_accepting()  # a graceful stop cancels the read
            raise
        while not self.queue.empty():  # whatever else is waiting goes in the same batch
            self._take(self.queue.get_nowait(), out)
        return True

    def _stop_accepting(self) -> None:
        """New requests get 503; queued ones, never handed to the graph, too, and those a
        failure left uncommitted."""
        self.accepting = False
        while not self.queue.empty():
            delivery = self.queue.get_nowait()
            if not delivery.withdrawn:
                delivery.taken.set_result(False)
        for delivery in self.committing:
            if not delivery.taken.done():
                delivery.taken.set_result(False)
        self.committing = []

    async def close(self) -> None:
        self._stop_accepting()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
