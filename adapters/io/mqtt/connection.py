"""One MQTT connection (aiomqtt, paho-mqtt underneath): building the client from a node's
settings, TLS, and telling permanent refusals from transient losses.

aiomqtt rather than paho directly: it runs paho on the graph's event loop (socket readers
and writers, no thread), which is most of what a connector would otherwise write. Two
things it does not expose are reached on the paho client it wraps (`Client._client`):
manual acknowledgements (`manual_ack_set`, `ack`, paho 2.x), so that a PUBACK leaves only
once the graph has committed the message, and the future that tells a connection was lost
(`Client._disconnected`), so that a wait for PUBACKs or messages ends at once when it
is. Both are stable across aiomqtt 2.x; `check_client` fails clearly if one ever goes.
"""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final

from adapters.io.client import require
from adapters.io.mqtt.params import NEVER_EXPIRES, V5, Address, Broker, seconds
from adapters.io.reconnect import CONNECTED, RECONNECTING, Link
from engine.durations import duration_ms
from engine.node import NodeContext, NodeFailure

# aiomqtt logs through this (it warns per message when its queue is full; the nodes count
# instead), kept quiet unless something is really wrong.
MQTT_LOG: Final = logging.getLogger("headrace.mqtt")
MQTT_LOG.setLevel(logging.ERROR)

# Reason codes (MQTT 5; paho maps MQTT 3.1.1's CONNACK codes onto them) that waiting cannot
# change. Server busy/unavailable, quota and rate limits are left out: those pass.
PERMANENT_CODES: Final = {
    0x80: "the broker refused it (unspecified error)",
    0x81: "the broker found a malformed packet",
    0x82: "protocol error",
    0x84: "the broker does not support this MQTT protocol version (try `protocol: \"3.1.1\"`)",
    0x85: "the broker refused the client id",
    0x86: "the broker refused the username or password",
    0x87: "not authorized",
    0x8A: "the client is banned by the broker",
    0x8C: "bad authentication method",
    0x8F: "invalid topic filter",
    0x90: "invalid topic name",
    0x99: "payload format invalid",
    0x9A: "retain is not supported by the broker",
    0x9B: "this QoS is not supported by the broker",
    0x9E: "shared subscriptions are not supported by the broker",
    0xA2: "wildcard subscriptions are not supported by the broker",
}


NOT_AUTHORIZED: Final = 0x87


class Refused(Exception):
    """The broker said no to something waiting will not change (a subscription): permanent."""


def code_of(error: BaseException) -> int | None:
    rc = getattr(error, "rc", None)
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def classify(error: BaseException) -> str | None:
    """None for a transient error (refused or lost connection, timeout); else the one line."""
    if isinstance(error, Refused):
        return str(error)
    if type(error).__name__ == "MqttConnectError":
        code = code_of(error)
        if code == NOT_AUTHORIZED:  # what Mosquitto answers to a wrong password
            return f"cannot connect: not authorized: the broker refused the username or password (CONNACK {code})"
        if code in PERMANENT_CODES:
            return f"cannot connect: {PERMANENT_CODES[code]} (CONNACK {code})"
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "WRONG_VERSION_NUMBER" in text:
        return f"cannot connect: TLS: {text.strip().splitlines()[0]}"
    return None


def tls_context(broker: Broker, where: str) -> ssl.SSLContext | None:
    """The TLS context, built now so that a missing or bad file is one line at start."""
    tls = broker.tls
    if not tls.enabled:
        return None
    try:
        context = ssl.create_default_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise NodeFailure(f"{where}: TLS: {exc}") from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def where(ctx: NodeContext) -> str:
    return f"node '{ctx.name}' ({ctx.type_name})"


def check_address(broker: Broker, ctx: NodeContext) -> Address:
    address = Address(broker.url)
    problem = address.problem()
    if problem:
        raise NodeFailure(f"{where(ctx)}: {problem}")
    return address


def default_client_id(ctx: NodeContext) -> str:
    """A persistent session needs the same id at every start: the graph's and node's names."""
    return f"headrace-{ctx.graph or 'graph'}-{ctx.name}"[:64]


def make_client(broker: Broker, ctx: NodeContext, *, client_id: str, clean_session: bool,
                receive_maximum: int = 0, session_expiry: str = "", inbox: object = None,
                max_inflight: int = 0, context: ssl.SSLContext | None = None) -> Any:
    """An aiomqtt client, not connected yet. `receive_maximum` (MQTT 5) is the most QoS 1
    messages the broker may send before this client acknowledges one: what bounds a reader's
    memory. `inbox` replaces aiomqtt's (unbounded) queue of incoming messages."""
    aiomqtt = require("aiomqtt", "mqtt", ctx.name)
    address = check_address(broker, ctx)
    options: dict[str, Any] = {}
    if broker.protocol == V5:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if receive_maximum:
            properties.ReceiveMaximum = min(receive_maximum, 65535)
        if not clean_session:
            expiry = duration_ms(session_expiry)
            properties.SessionExpiryInterval = NEVER_EXPIRES if expiry is None else expiry // 1000
        options.update(protocol=aiomqtt.ProtocolVersion.V5, properties=properties, clean_start=clean_session)
    else:
        options.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=clean_session)
    if inbox is not None:
        options["queue_type"] = lambda maxsize=0: inbox  # aiomqtt builds its queue with this
    client = aiomqtt.Client(
        address.host, address.port, username=broker.username or None, password=broker.password or None,
        identifier=client_id or None, logger=MQTT_LOG, keepalive=int(seconds(broker.keepalive, "60s")),
        max_inflight_messages=max_inflight or None, tls_context=context, **options)
    check_client(client, ctx)
    return client


def check_client(client: Any, ctx: NodeContext) -> None:
    paho = getattr(client, "_client", None)
    if not hasattr(paho, "manual_ack_set") or not isinstance(getattr(client, "_disconnected", None), asyncio.Future):
        raise NodeFailure(f"{where(ctx)}: this aiomqtt/paho-mqtt version lacks manual acknowledgements; "
                          "install aiomqtt 2.x with paho-mqtt 2.x")


def paho_of(client: Any) -> Any:
    return client._client


def lost(client: Any) -> "asyncio.Future[None]":
    """Done once the connection is lost (or closed)."""
    future: asyncio.Future[None] = client._disconnected
    return future


def is_connected(client: Any) -> bool:
    return bool(client is not None and not lost(client).done() and paho_of(client).is_connected())


async def disconnect(client: Any) -> None:
    """Close the connection, whatever state it is in; never raises."""
    if client is None:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.__aexit__(None, None, None), 5.0)
    future = lost(client)
    if future.done() and not future.cancelled():
        future.exception()  # read, so asyncio does not log it as never retrieved


async def first_connect(link: Link, connect: Callable[[], Awaitable[None]]) -> None:
    """One attempt at start: a permanent refusal (a wrong password) fails the graph now; a
    transient one is left to the first read or write, whose reconnecting a stop can cancel
    (a stop does not interrupt `open`)."""
    try:
        await connect()
    except Exception as error:
        if classify(error) is not None:
            raise link.failure(error) from None
        link.state = RECONNECTING
        link.last_error = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return
    link.state = CONNECTED
