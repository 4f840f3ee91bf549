"""`redis.write`: each batch is one pipeline of XADDs (no transaction: one round trip).

`write` returns once the server has answered every XADD of the batch: the entries are in
the stream (and in its append-only file, when the server fsyncs it on every write). An
entry the server refuses on its own goes to `on_error` and the rest still lands; an
answer that may pass (OOM until consumers trim, LOADING, BUSY) is retried for the
entries it concerns only. A lost connection reconnects through the node's Link and sends
again what has no answer yet: an entry whose answer was lost with the connection is
written twice (at least once).
"""

import json
from typing import TYPE_CHECKING, Final

import orjson

from adapters.io.reconnect import CLOSED, Link
from adapters.io.redis.connection import classify, close_quietly, make_client
from adapters.io.redis.params import JSON, RedisWriteParams, shown_address
from engine.node import AsyncSink, Batch, Event, NodeContext, NodeFailure
from engine.params import expect

if TYPE_CHECKING:
    from redis.asyncio import Redis

STREAM_TYPES: Final = ("stream", "none")  # "none": XADD makes the stream
# Answers about the stream or the connection rather than one entry: no entry can land.
WHOLE_NODE: Final = ("WRONGTYPE", "NOPERM", "NOAUTH", "WRONGPASS")


def json_text(value: object) -> str:
    """A value as compact JSON text (orjson; `json` for what it does not know)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def as_fields(event: Event) -> dict[str, str]:
    """`encode: fields`: each top-level field; text as it is, anything else as JSON text."""
    if not event:
        raise ValueError("the event is empty, and a stream entry needs at least one field")
    return {key: value if isinstance(value, str) else json_text(value) for key, value in event.items()}


class RedisWrite(AsyncSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, RedisWriteParams)
        self.connection = params.connection
        self.stream = params.stream
        self.maxlen = params.maxlen
        self.encode_json = params.encode == JSON
        self.field = params.field
        self.link = Link(ctx, classify(self.connection.url, self.stream))
        self.client: Redis | None = None
        self.written = 0  # entries the server confirmed, for the tests and the stats

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    async def connect(self) -> None:
        await self._drop_client()
        self.client = make_client(self.ctx, self.connection)
        kind = str(await self.client.type(self.stream))  # text: the client decodes answers
        if kind not in STREAM_TYPES:
            raise NodeFailure(f"{self.where()}: the key '{self.stream}' at redis "
                              f"{shown_address(self.connection.url)} is a {kind}, not a stream")

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await close_quietly(client)

    async def open(self) -> None:
        await self.link.call(_nothing, self.connect)

    def health(self) -> dict[str, object]:
        return self.link.health()

    def encode(self, event: Event) -> dict[str, str]:
        if self.encode_json:
            return {self.field: json_text(event)}
        return as_fields(event)

    async def write(self, batch: Batch) -> None:
        events: Batch = []
        entries: list[dict[str, str]] = []
        for event in batch:
            try:
                entries.append(self.encode(event))
                events.append(event)
            except (TypeError, ValueError) as exc:
                self.give_up([event], f"cannot encode the event for stream '{self.stream}': {exc}")
        waiting = list(range(len(entries)))
        await self.link.call(lambda: self._send(events, entries, waiting), self.connect)

    async def _send(self, events: Batch, entries: list[dict[str, str]], waiting: list[int]) -> None:
        """XADD the entries listed in `waiting`; those answered leave it. Raises the first
        answer that may pass (Link waits and sends what is left), or one about the whole node."""
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        for index in waiting:
            pipe.xadd(self.stream, entries[index], maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        results = await pipe.execute(raise_on_error=False)
        again: list[int] = []
        raised: list[Exception] = []  # node-level first: a permanent one must not wait behind a passing one
        refused: dict[str, Batch] = {}
        for index, result in zip(waiting, results):
            if not isinstance(result, Exception):
                self.written += 1
                continue
            if self._entry_refused(result):
                text = str(result).strip()
                refused.setdefault(text.splitlines()[0] if text else type(result).__name__, []).append(events[index])
                continue
            again.append(index)
            if self.link.classify(result) is None:
                raised.append(result)
            else:
                raised.insert(0, result)
        waiting[:] = again
        for problem, failed in refused.items():
            self.give_up(failed, f"redis refused {len(failed)} entries for stream '{self.stream}': {problem}")
        if raised:
            raise raised[0]

    def _entry_refused(self, error: Exception) -> bool:
        """An answer about this one entry (nothing else in the batch is wrong): `on_error`."""
        from redis.exceptions import NoPermissionError, ResponseError

        if not isinstance(error, ResponseError) or isinstance(error, NoPermissionError):
            return False
        return not str(error).startswith(WHOLE_NODE) and self.link.classify(error) is not None

    async def close(self) -> None:
        self.link.state = CLOSED
        await self._drop_client()


async def _nothing() -> None:
    """The operation of `open`: connecting (and checking the key's type) is the whole work."""

