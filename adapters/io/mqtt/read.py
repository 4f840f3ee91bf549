"""`mqtt.read`: subscribes to topics; each `read` takes what has arrived, at most one batch.

Acknowledgements (docs/connectors.md, "MQTT"): QoS 1 messages are acknowledged by hand
(paho's manual acks). Their PUBACKs leave in `handed_on()`, once the batch is on the output
edges (committed, when an edge is durable), never in `read`. A PUBACK belongs to the
connection a message came on: one read before a reconnect is not acknowledged after it
(its packet id may by then name another message); in a persistent session the broker sends
it again instead (at least once).

Memory: at most `max_inflight` messages wait here. With MQTT 5 that is also the client's
Receive Maximum, the most QoS 1 messages the broker should send before one is acknowledged
(and none is until the graph has taken it). Brokers do not all keep to it strictly, and
QoS 0 has no flow control at all, so once `max_inflight` messages wait the node stops
reading the connection until the graph takes some: the rest waits in the socket buffers and
at the broker (whose own limits then apply: Mosquitto's `max_queued_messages`).
"""

import asyncio
import json
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from adapters.io.mqtt.connection import (
    Refused,
    classify,
    default_client_id,
    disconnect,
    first_connect,
    is_connected,
    lost,
    make_client,
    paho_of,
    tls_context,
    where,
)
from adapters.io.mqtt.params import TEXT, MqttReadParams
from adapters.io.reconnect import Link
from engine.node import AsyncSource, Batch, Event, Failures, NodeContext
from engine.params import expect

FAILED_SUBSCRIPTION: Final = 0x80


class Inbox(asyncio.Queue[Any]):
    """Where aiomqtt puts incoming messages (its queue_type). Once `limit` wait here, `on_full`
    stops reading the connection: the rest waits in the socket and at the broker."""

    def __init__(self, limit: int, on_full: Callable[[], None]) -> None:
        super().__init__()
        self.limit = limit
        self.on_full = on_full

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        if self.qsize() >= self.limit:
            self.on_full()


class MqttRead(AsyncSource):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, MqttReadParams)
        self.params = params
        self.topics = params.topics
        self.qos = params.qos
        self.text = params.format == TEXT
        self.topic_field = params.topic_field
        self.batch_size = params.batch_size
        self.client_id = params.broker.client_id or ("" if params.clean_session else default_client_id(ctx))
        self.link = Link(ctx, classify)
        self.context: ssl.SSLContext | None = None
        self.client: Any = None
        self.inbox = Inbox(params.max_inflight, self._pause)
        self.paused = False  # not reading the connection: the inbox is full
        self.pauses = 0
        self.carried: deque[Any] = deque()  # from a lost connection: handed on, never acknowledged
        self.unacked: list[tuple[Any, int, int]] = []  # (client, mid, qos) of what read returned
        self.received = 0
        self.acknowledged = 0

    def health(self) -> dict[str, object]:
        return {**self.link.health(), "waiting": self.inbox.qsize() + len(self.carried), "paused": self.pauses}

    async def open(self) -> None:
        self.context = tls_context(self.params.broker, where(self.ctx))
        await first_connect(self.link, self.connect)

    async def connect(self) -> None:
        old = self.client
        self.client = None
        if old is not None:
            self._carry_over()
            await disconnect(old)
        client = make_client(
            self.params.broker, self.ctx, client_id=self.client_id, clean_session=self.params.clean_session,
            receive_maximum=self.params.max_inflight, session_expiry=self.params.session_expiry,
            inbox=self.inbox, context=self.context)
        paho_of(client).manual_ack_set(True)
        await client.__aenter__()
        try:
            granted = await client.subscribe([(topic, self.qos) for topic in self.topics])
        except BaseException:
            await disconnect(client)
            raise
        for topic, code in zip(self.topics, granted, strict=False):
            value = getattr(code, "value", code)
            if isinstance(value, int) and value >= FAILED_SUBSCRIPTION:
                await disconnect(client)
                name = code.getName() if hasattr(code, "getName") else f"code {value}"
                raise Refused(f"the broker refused the subscription to '{topic}' ({name})")
        self.client = client

    def _carry_over(self) -> None:
        """Messages the lost connection left waiting. In a persistent session the broker sends
        its QoS 1 ones again, so only QoS 0 ones are kept; with a clean session the broker
        forgets them all, so all are kept (handed on, never acknowledged)."""
        old, self.inbox = self.inbox, Inbox(self.params.max_inflight, self._pause)
        self.paused = False
        while not old.empty():
            message = old.get_nowait()
            if self.params.clean_session or message.qos == 0:
                self.carried.append(message)
        self.unacked = []  # their packet ids mean nothing on the next connection

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        messages = await self.link.call(self._fetch, self.connect)
        out = outs[0]
        for client, message in messages:
            self.received += 1
            if message.qos > 0 and client is not None:
                self.unacked.append((client, message.mid, message.qos))
            self._decode(message, failures, outs, out)
        return True

    async def _fetch(self) -> list[tuple[Any, Any]]:
        """Every message waiting, at most a batch; waits for the first one or a lost connection."""
        taken: list[tuple[Any, Any]] = []
        while self.carried and len(taken) < self.batch_size:
            taken.append((None, self.carried.popleft()))
        client, inbox = self.client, self.inbox
        if not taken:
            getting = asyncio.ensure_future(inbox.get())
            try:
                await asyncio.wait({getting, lost(client)}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getting.done():
                    getting.cancel()
            if not getting.done() or getting.cancelled():
                raise ConnectionError(f"the connection was lost: {_lost_reason(client)}")
            taken.append((client, getting.result()))
        while len(taken) < self.batch_size and not inbox.empty():
            taken.append((client, inbox.get_nowait()))
        if self.paused and inbox.qsize() < inbox.limit and client is self.client:
            self._resume()
        return taken

    def _pause(self) -> None:
        """Stop reading the connection (aiomqtt reads it whenever it is readable): TCP's flow
        control holds the broker back, and the broker keeps what it cannot send."""
        sock = paho_of(self.client).socket() if self.client is not None else None
        if self.paused or sock is None:
            return
        asyncio.get_running_loop().remove_reader(sock.fileno())
        self.paused = True
        self.pauses += 1

    def _resume(self) -> None:
        """Read the connection again, as aiomqtt's own reader does."""
        client = self.client
        paho = paho_of(client)
        sock = paho.socket()
        self.paused = False
        if sock is None:
            return

        def readable() -> None:
            try:
                paho.loop_read()
                while getattr(sock, "pending", lambda: 0)() > 0:  # TLS: bytes decrypted, not read yet
                    paho.loop_read()
            except Exception as exc:  # a broken connection: what aiomqtt does too
                if not lost(client).done():
                    lost(client).set_exception(exc)

        asyncio.get_running_loop().add_reader(sock.fileno(), readable)

    def _decode(self, message: Any, failures: Failures, outs: list[Batch], out: Batch) -> None:
        topic = str(message.topic)
        payload: bytes = message.payload if isinstance(message.payload, bytes) else bytes(message.payload or b"")
        event: Event | None = None
        problem = ""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"the payload is not UTF-8 (byte {exc.start})"
        else:
            if self.text:
                event = {"payload": text}
            else:
                event, problem = _json_object(text)
        if event is None:
            # Decoding the same bytes again cannot succeed: a retry policy uses up its attempts
            # at once and applies its `then`. The dead letter keeps the payload and topic.
            bad: Event = {"topic": topic, "payload": payload.decode("utf-8", "replace")}
            while not failures.event_failed(bad, f"topic '{topic}': {problem}", outs):
                pass
            return
        if self.topic_field:
            event[self.topic_field] = topic
        out.append(event)

    def handed_on(self) -> None:
        """The last batch is on the output edges (committed, if durable): PUBACK it now."""
        current = self.client
        if is_connected(current):
            paho = paho_of(current)
            for client, mid, qos in self.unacked:
                if client is current:
                    paho.ack(mid, qos)
                    self.acknowledged += 1
        self.unacked = []

    def done_reading(self) -> None:
        self.link.stopping = True

    async def close(self) -> None:
        # Unacknowledged messages stay with the broker (persistent session): sent again next time.
        client, self.client = self.client, None
        await disconnect(client)
        self.link.state = "closed"


def _lost_reason(client: Any) -> str:
    future = lost(client)
    error = future.exception() if future.done() and not future.cancelled() else None
    return str(error) if error is not None else "closed"


def _json_object(text: str) -> tuple[Event | None, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply)"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    return value, ""
