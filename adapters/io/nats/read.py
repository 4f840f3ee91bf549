"""`nats.read`: a JetStream durable pull consumer; each `read` fetches at most one batch.

Acknowledgements (docs/connectors.md, "NATS JetStream"): a message is acknowledged only in
`handed_on()`, once every event of its batch is on the output edges (committed to LMDB when
the edge is durable). Until then the server keeps it pending; one not acknowledged within
the consumer's `ack_wait` (a crash, a lost connection) is delivered again. While a batch
waits for a full edge, the node tells the server it is still working on it (`+WPI`), so a
slow graph does not get its messages redelivered behind its back.

The consumer lives on the server under the `durable` name: created with the node's
settings when missing, used as it is when it exists (its own deliver policy, ack wait and
filter then count). The stream must exist unless `create_stream: true`.
"""

import asyncio
import json
import logging
import time
from typing import Any, Final

from adapters.fast_json import loads_body
from adapters.io.client import require
from adapters.io.nats.connection import Permanent, classify, close_quietly, connect, first_connect, where
from adapters.io.nats.params import ACK_WAIT, FETCH_TIMEOUT, NEW, TEXT, NatsReadParams, seconds
from adapters.io.reconnect import CLOSED, Link
from engine.node import AsyncSource, Batch, Failures, NodeContext
from engine.params import expect

LOG: Final = logging.getLogger("headrace")
ACK: Final = b"+ACK"
WORKING: Final = b"+WPI"
# Room on the server for the batch being handed on and one fetched behind a cancelled read.
ACK_PENDING_BATCHES: Final = 4
MIN_ACK_PENDING: Final = 1000


class ConnectionLost(Exception):
    """The client closed under a fetch (nats-py was told not to reconnect): Link reconnects."""


class NatsRead(AsyncSource):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        require("nats", "nats", ctx.name)
        params = expect(ctx.params, NatsReadParams)
        self.params = params
        self.servers = where(params.servers)
        self.text = params.format == TEXT
        self.fetch_timeout_s = seconds(params.fetch_timeout, FETCH_TIMEOUT)
        self.ack_wait_s = seconds(params.ack_wait, ACK_WAIT)
        self.link = Link(ctx, classify)
        self.client: Any = None
        self.subscription: Any = None
        self.fetched: list[Any] = []  # the last read's messages: acknowledged in handed_on
        self.fetched_at = 0.0
        self.acking: asyncio.Task[None] | None = None
        self.keepalive: asyncio.Task[None] | None = None
        self.acked = 0  # messages acknowledged, for tests

    def health(self) -> dict[str, object]:
        return self.link.health()

    async def open(self) -> None:
        await first_connect(self.link, self._connect)
        self.keepalive = asyncio.ensure_future(self._keep_working())

    async def _on_error(self, error: Exception) -> None:
        # nats-py's own report of a lost or refused connection: shown in the stats; the
        # failing operation is what makes Link reconnect.
        self.link.last_error = f"{type(error).__name__}: {error}"[:200]

    async def _connect(self) -> None:
        await close_quietly(self.client)
        self.client = self.subscription = None
        import nats.js.api as api
        import nats.js.errors as js_errors

        params = self.params
        client = await connect(params.servers, params.auth, self.ctx.name, self._on_error)
        try:
            js = client.jetstream()
            try:
                await js.stream_info(params.stream)
            except js_errors.NotFoundError:
                if not params.create_stream:
                    raise Permanent(f"stream '{params.stream}' not found on {self.servers} (create it, or set "
                                    "`create_stream: true`)") from None
                await js.add_stream(name=params.stream, subjects=[params.subject])
            try:
                await js.consumer_info(params.stream, params.durable)
            except js_errors.NotFoundError:
                await js.add_consumer(params.stream, api.ConsumerConfig(
                    durable_name=params.durable, name=params.durable,
                    deliver_policy=api.DeliverPolicy.NEW if params.deliver == NEW else api.DeliverPolicy.ALL,
                    ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
                    filter_subject=params.subject or None,
                    max_ack_pending=max(MIN_ACK_PENDING, ACK_PENDING_BATCHES * params.batch_size)))
            self.subscription = await js.pull_subscribe_bind(durable=params.durable, stream=params.stream)
        except BaseException:
            await close_quietly(client)
            raise
        self.client = client

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        await self._settle_acks()
        messages = await self.link.call(self._fetch, self._connect)
        out = outs[0]
        for message in messages:
            event = self._decode(message.data)
            if isinstance(event, str):
                # Decoding the same bytes again cannot succeed: a retry policy uses up its
                # attempts at once and applies its `then`.
                while not failures.event_failed({"payload": message.data.decode("utf-8", "replace")},
                                                f"message on {message.subject}: {event}", outs):
                    pass
            else:
                out.append(event)
        self.fetched = messages
        self.fetched_at = time.monotonic()
        return True

    def _decode(self, data: bytes) -> dict[str, object] | str:
        """The event of one payload, or what is wrong with it."""
        if self.text:
            return {"payload": data.decode("utf-8", "replace")}
        try:
            value = loads_body(data)
        except json.JSONDecodeError as exc:
            return f"invalid JSON ({exc.msg} at column {exc.colno})"
        except (UnicodeDecodeError, RecursionError):
            return "invalid JSON (not UTF-8, or nested too deeply)"
        if not isinstance(value, dict):
            return f"expected a JSON object, got {type(value).__name__}"
        return value

    async def _fetch(self) -> list[Any]:
        import nats.errors

        client, subscription = self.client, self.subscription
        if client is None or subscription is None or client.is_closed:
            raise ConnectionLost("the connection is closed")
        try:
            return list(await subscription.fetch(self.params.batch_size, timeout=self.fetch_timeout_s))
        except (TimeoutError, nats.errors.TimeoutError):
            if client.is_closed or not client.is_connected:
                raise ConnectionLost("the connection was lost") from None
            return []  # nothing new within the timeout: the runtime asks again

    def handed_on(self) -> None:
        """The last batch is on the output edges (committed, when durable): acknowledge it."""
        if not self.fetched:
            return
        messages, self.fetched = self.fetched, []
        previous = self.acking
        self.acking = asyncio.ensure_future(self._ack(messages, previous))

    async def _ack(self, messages: list[Any], previous: "asyncio.Task[None] | None") -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self._send(messages, ACK)
        self.acked += len(messages)

    async def _send(self, messages: list[Any], what: bytes) -> None:
        """Acks go through the current client: after a reconnect the messages' own is closed.
        A lost ack is not retried: the server delivers the message again after `ack_wait`."""
        client = self.client
        if client is None or client.is_closed:
            self.link.last_error = f"{len(messages)} acknowledgements lost with the connection; redelivered"
            return
        publish = client.publish
        try:
            for message in messages:
                await publish(message.reply, what)
        except Exception as error:
            self.link.last_error = f"acknowledging: {type(error).__name__}: {error}"[:200]

    async def _settle_acks(self) -> None:
        if self.acking is not None:
            acking, self.acking = self.acking, None
            await asyncio.gather(acking, return_exceptions=True)

    async def _keep_working(self) -> None:
        """While a fetched batch waits for room on a full edge, `+WPI` resets its ack timer."""
        interval = max(0.05, self.ack_wait_s / 3)
        while True:
            await asyncio.sleep(interval)
            if self.fetched and time.monotonic() - self.fetched_at >= interval:
                await self._send(list(self.fetched), WORKING)

    async def close(self) -> None:
        if self.keepalive is not None:
            self.keepalive.cancel()
            await asyncio.gather(self.keepalive, return_exceptions=True)
        await self._settle_acks()
        client, self.client = self.client, None
        if client is not None and not client.is_closed:
            try:
                await client.flush(timeout=2)  # the last acks leave before the connection closes
            except Exception as error:
                LOG.warning("node '%s': last acknowledgements not confirmed: %s", self.ctx.name, error,
                            extra={"graph": self.ctx.graph, "node": self.ctx.name})
        await close_quietly(client)
        self.link.state = CLOSED
