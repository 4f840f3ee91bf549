"""`nats.write`: each event is one message. `write` returns once the server has them all:
with `jetstream: true` every message's publish acknowledgement (the stream stored it), on
plain NATS a flush (the server received everything; core NATS stores nothing).

A lost connection or a missing acknowledgement sends the batch's unacknowledged messages
again after a reconnect (adapters.io.reconnect.Link): at least once. With `dedup` (the
default) every event carries a `Nats-Msg-Id` that stays the same across those resends, so
the stream stores it once within its duplicate window (2 minutes by default). A message the
stream refuses for good (too large, the stream full with `discard: new`) goes to
`on_error`, and the rest of the batch still lands.
"""

import asyncio
import re
import uuid
from typing import Any, Final

from adapters.fast_json import encode_jsonl_bytes
from adapters.io.client import require
from adapters.io.nats.connection import Permanent, classify, close_quietly, connect, first_connect, where
from adapters.io.nats.params import PUBLISH_TIMEOUT, TEXT, NatsWriteParams, seconds
from adapters.io.reconnect import CLOSED, Link
from engine.node import AsyncSink, Batch, NodeContext
from engine.params import expect

# At most this many publishes wait for their acks at once (nats-py allows 4000).
IN_FLIGHT: Final = 1000
MSG_ID: Final = "Nats-Msg-Id"
UNAVAILABLE: Final = "503"  # JetStream's "try again" (a stream leader moving, a server starting)
SUBJECT: Final = re.compile(r"^[^.\s*>]+(\.[^.\s*>]+)*$")


class Unconfirmed(Exception):
    """Some messages of the batch got no acknowledgement: Link reconnects and resends them."""


class NatsWrite(AsyncSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        require("nats", "nats", ctx.name)
        params = expect(ctx.params, NatsWriteParams)
        self.params = params
        self.servers = where(params.servers)
        self.timeout_s = seconds(params.timeout, PUBLISH_TIMEOUT)
        self.link = Link(ctx, classify)
        self.client: Any = None
        self.js: Any = None
        self.run_id = uuid.uuid4().hex[:12]  # message ids: unique to this run, stable across resends
        self.next_id = 0
        self.batch: Batch | None = None  # the batch being written, and what of it is not yet stored
        self.messages: list[tuple[str, bytes, str]] = []  # subject, payload, message id
        self.waiting: list[int] = []  # indexes into batch/messages without an ack yet
        self.refused: dict[str, list[int]] = {}  # why the stream refused them -> indexes

    def health(self) -> dict[str, object]:
        return self.link.health()

    async def open(self) -> None:
        subject = self.params.subject
        if subject and not SUBJECT.match(subject):
            raise self.link.failure(Permanent(f"invalid subject '{subject}' (tokens separated by '.', "
                                              "no spaces or wildcards)"))
        await first_connect(self.link, self._connect)

    async def _on_error(self, error: Exception) -> None:
        self.link.last_error = f"{type(error).__name__}: {error}"[:200]

    async def _connect(self) -> None:
        import nats.js.errors as js_errors

        await close_quietly(self.client)
        self.client = self.js = None
        client = await connect(self.params.servers, self.params.auth, self.ctx.name, self._on_error)
        try:
            js = client.jetstream(publish_async_max_pending=IN_FLIGHT) if self.params.jetstream else None
            if js is not None and self.params.subject:
                try:
                    await js.find_stream_name_by_subject(self.params.subject)
                except js_errors.NotFoundError:
                    raise Permanent(f"no stream on {self.servers} takes subject '{self.params.subject}' "
                                    "(create one, or set `jetstream: false` for core NATS)") from None
        except BaseException:
            await close_quietly(client)
            raise
        self.client, self.js = client, js

    def _prepare(self, batch: Batch) -> None:
        """Subjects, payloads and message ids of a new batch (kept for resends)."""
        params = self.params
        payloads: list[bytes | None]
        if params.format == TEXT:
            payloads = [v.encode() if isinstance(v := e.get("payload"), str) else None for e in batch]
        else:
            payloads = list(encode_jsonl_bytes(batch).split(b"\n")[:-1])  # JSON escapes newlines in text
        self.batch, self.waiting, self.refused, self.messages = batch, [], {}, []
        first = self.next_id
        self.next_id += len(batch)
        for index, (event, payload) in enumerate(zip(batch, payloads)):
            subject = params.subject
            if params.subject_field:
                value = event.get(params.subject_field)
                subject = value if isinstance(value, str) and value else params.subject
            if payload is None:
                self.refused.setdefault("no text field `payload`", []).append(index)
            elif not subject or not SUBJECT.match(subject):
                self.refused.setdefault(f"no valid subject in field `{params.subject_field}`", []).append(index)
            else:
                self.waiting.append(index)
            self.messages.append((subject, payload or b"", f"{self.run_id}-{first + index}"))

    async def write(self, batch: Batch) -> None:
        if batch is not self.batch:  # the runtime retrying the same batch resumes it
            self._prepare(batch)
        publish = self._publish_jetstream if self.params.jetstream else self._publish_core
        await self.link.call(publish, self._connect)
        refused, self.refused, self.batch = self.refused, {}, None
        for why, indexes in refused.items():
            self.give_up([batch[i] for i in indexes], f"{why} ({len(indexes)} events)")

    async def _publish_core(self) -> None:
        client = self.client
        publish, messages = client.publish, self.messages
        for index in self.waiting:
            subject, payload, _ = messages[index]
            await publish(subject, payload)
        await client.flush(timeout=self.timeout_s)  # PING/PONG: the server has read all of it
        self.waiting = []

    async def _publish_jetstream(self) -> None:
        js, messages, dedup = self.js, self.messages, self.params.dedup
        while self.waiting:
            chunk = self.waiting[:IN_FLIGHT]
            futures = []
            for index in chunk:
                subject, payload, msg_id = messages[index]
                futures.append(await js.publish_async(subject, payload, headers={MSG_ID: msg_id} if dedup else None))
            _, late = await asyncio.wait(futures, timeout=self.timeout_s)
            for future in late:
                future.cancel()
            unconfirmed: list[int] = []
            for index, future in zip(chunk, futures):
                error = None if future.cancelled() else future.exception()
                refusal = _refusal(error)
                if refusal:
                    self.refused.setdefault(f"the stream refused the message: {refusal}", []).append(index)
                elif future.cancelled() or error is not None:  # no answer, no responders: may pass
                    unconfirmed.append(index)
            self.waiting = unconfirmed + self.waiting[len(chunk):]
            if unconfirmed:
                first = futures[chunk.index(unconfirmed[0])]
                why = "no acknowledgement" if first.cancelled() else f"{type(first.exception()).__name__}"
                raise Unconfirmed(f"{len(unconfirmed)} messages not confirmed ({why}); sending them again")

    async def close(self) -> None:
        client, self.client, self.js = self.client, None, None
        await close_quietly(client)
        self.link.state = CLOSED


def _refusal(error: BaseException | None) -> str:
    """What the stream said when it refused a message for good; "" for anything else."""
    import nats.js.errors as js_errors

    if isinstance(error, js_errors.APIError) and str(error.code) != UNAVAILABLE:
        return str(error.description or error.err_code or error.code)
    return ""
