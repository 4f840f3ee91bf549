"""`mqtt.write`: each event is one PUBLISH. With QoS 1, `write` returns once the broker has
acknowledged (PUBACK) every message of the batch; with QoS 0, once every message is
handed to the connection. A lost connection is reconnected (`Link`) and the messages not
yet acknowledged are published again: at least once."""

import asyncio
import json
from typing import Any, Final

from adapters.fast_json import encode_jsonl_bytes
from adapters.io.mqtt.connection import (
    classify,
    disconnect,
    first_connect,
    lost,
    make_client,
    tls_context,
    where,
)
from adapters.io.mqtt.params import TEXT, MqttWriteParams, seconds
from adapters.io.reconnect import Link
from engine.node import AsyncSink, Batch, Event, NodeContext
from engine.params import expect

WILDCARDS: Final = ("+", "#")
Message = tuple[str, bytes]  # (topic, payload)


class MqttWrite(AsyncSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, MqttWriteParams)
        self.params = params
        self.topic = params.topic
        self.qos = params.qos
        self.retain = params.retain
        self.text = params.format == TEXT
        self.topic_field = params.topic_field
        self.timeout_s = seconds(params.timeout, "10s")
        self.link = Link(ctx, classify)
        self.client: Any = None
        self.context: Any = None
        self.published = 0

    def health(self) -> dict[str, object]:
        return self.link.health()

    async def open(self) -> None:
        self.context = tls_context(self.params.broker, where(self.ctx))
        await first_connect(self.link, self.connect)

    async def connect(self) -> None:
        old, self.client = self.client, None
        await disconnect(old)
        client = make_client(self.params.broker, self.ctx, client_id=self.params.broker.client_id,
                             clean_session=True, max_inflight=self.params.max_inflight, context=self.context)
        # The batch is awaited as a whole: aiomqtt's warning about many pending calls is noise.
        client.pending_calls_threshold = 1 << 30
        await client.__aenter__()
        self.client = client

    async def write(self, batch: Batch) -> None:
        messages = self.encode(batch)
        if messages:
            await self.link.call(lambda: self._publish_once(messages), self.connect)
            self.published += len(messages)

    def encode(self, batch: Batch) -> list[Message]:
        """(topic, payload) for each event that has them; the others go to `give_up`."""
        topics: list[str] = []
        bodies: list[Event] = []
        refused: list[tuple[Event, str]] = []
        for event in batch:
            topic = event.get(self.topic_field) if self.topic_field else None
            if not isinstance(topic, str) or not topic:
                topic = self.topic
            if not topic or any(w in topic for w in WILDCARDS):
                refused.append((event, f"no topic to publish to ({topic!r})" if not topic else
                                f"the topic '{topic}' has a wildcard (+ or #)"))
                continue
            if self.text and event.get("payload") is None:
                refused.append((event, "the event has no `payload` field (format: text)"))
                continue
            if self.topic_field and self.topic_field in event:
                event = {k: v for k, v in event.items() if k != self.topic_field}
            topics.append(topic)
            bodies.append(event)
        for event, message in refused:
            self.give_up([event], message)
        if self.text:
            return [(topic, _text(body["payload"])) for topic, body in zip(topics, bodies, strict=True)]
        lines = encode_jsonl_bytes(bodies).split(b"\n")  # a raw newline only ever ends a line
        return list(zip(topics, lines, strict=False))

    async def _publish_once(self, messages: list[Message]) -> None:
        try:
            await self._publish(messages)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the graph is stopping
            # As the connection goes, aiomqtt can leave a publish's wait cancelled, and gather
            # then raises CancelledError although this task was not cancelled.
            raise ConnectionError("the connection was lost while publishing") from None

    async def _publish(self, messages: list[Message]) -> None:
        client = self.client
        qos, retain, timeout = self.qos, self.retain, self.timeout_s
        publishing: asyncio.Future[list[Any]] = asyncio.gather(
            *(client.publish(topic, payload, qos, retain, timeout=timeout) for topic, payload in messages),
            return_exceptions=True)
        gone: asyncio.Future[Any] = lost(client)
        try:
            await asyncio.wait({publishing, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not publishing.done():
                publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)
        if publishing.cancelled():
            raise ConnectionError("the connection was lost before the broker acknowledged the batch")
        for result in publishing.result():
            if isinstance(result, BaseException):
                # Lost, timed out: Link reconnects and the batch is published again.
                raise ConnectionError(f"publishing failed: {result or type(result).__name__}")

    async def close(self) -> None:
        client, self.client = self.client, None
        await disconnect(client)
        self.link.state = "closed"


def _text(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")  # a number, a list: its JSON
