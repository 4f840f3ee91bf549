"""Specs of `nats.read` and `nats.write` (docs/connectors.md, "NATS JetStream"). nats-py
loads only when a graph runs one of them."""

from typing import Final

from adapters.io.nats.params import (
    ACK_WAIT,
    ALL,
    DEFAULT_SERVER,
    FETCH_TIMEOUT,
    JSON,
    NEW,
    PUBLISH_TIMEOUT,
    READ_BATCH,
    TEXT,
    check_nats_read,
    check_nats_write,
    parse_nats_read,
    parse_nats_write,
)
from engine.node import AsyncSink, AsyncSource, NodeContext
from engine.spec import FRESH, SINK, SOURCE, NodeSpec, param, params_schema

NAME: Final[dict[str, object]] = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}
SUBJECT: Final[dict[str, object]] = {"type": "string", "pattern": r"^[^\s.]+(\.[^\s.]+)*$"}
SERVER: Final[dict[str, object]] = {"type": "string", "pattern": r"^((nats|tls|ws|wss)://)?\S+$"}
POSITIVE_DURATION: Final[dict[str, object]] = {"type": "string", "pattern": "^0*[1-9][0-9]*(ms|s|m|h|d)$"}
FILE: Final[dict[str, object]] = {"type": "string", "minLength": 1}
TLS: Final = param({
    "type": "object", "additionalProperties": False,
    "properties": {
        "ca_file": param(FILE, "PEM file of the CA that signed the server's certificate (else the system's).",
                         "certs/ca.pem"),
        "cert_file": param(FILE, "PEM client certificate, for servers that verify clients.", "certs/client.pem"),
        "key_file": param(FILE, "PEM key of `cert_file`.", "certs/client.key"),
        "insecure_skip_verify": param({"type": "boolean"}, "Do not check the server's certificate (tests only).",
                                      False, default=False),
    },
}, "TLS to the server (a `tls://` server URL turns it on with the system's CAs).", {"ca_file": "certs/ca.pem"})


def common() -> dict[str, dict[str, object]]:
    """The connection parameters both node types take."""
    return {
        "servers": param({"oneOf": [SERVER, {"type": "array", "items": SERVER, "minItems": 1}]},
                         "One server URL or a list (tried in turn); `nats://user:password@host:4222` "
                         "logs in (the password is masked everywhere).",
                         ["nats://nats-1:4222", "nats://nats-2:4222"], default=DEFAULT_SERVER),
        "user": param({"type": "string", "minLength": 1}, "User name, with `password`.", "ingest"),
        "password": param({"type": "string"}, "Password of `user` (secret).", "${NATS_PASSWORD}"),
        "token": param({"type": "string", "minLength": 1}, "Token authentication (secret).", "${NATS_TOKEN}"),
        "creds_file": param(FILE, "A `.creds` file (JWT and NKey seed) of decentralized authentication.",
                            "secrets/ingest.creds"),
        "tls": TLS,
    }


def make_nats_read(ctx: NodeContext) -> AsyncSource:
    from adapters.io.nats.read import NatsRead  # nats-py loads only for graphs that use it
    return NatsRead(ctx)


def make_nats_write(ctx: NodeContext) -> AsyncSink:
    from adapters.io.nats.write import NatsWrite
    return NatsWrite(ctx)


NATS_READ: Final = NodeSpec(
    name="nats.read",
    kind=SOURCE,
    since=2,  # introduced with format 2, whose `edge: {durable: true}` makes its delivery at-least-once
    summary="Reads a JetStream stream through a durable pull consumer (made when missing), a batch per "
            "fetch; each message is acknowledged once its events are on the output edges (committed, when "
            "the edge is durable): at least once. See [Connectors](connectors.md#nats-jetstream).",
    params=params_schema({
        **common(),
        "stream": param(NAME, "The stream to read. It must exist unless `create_stream`.", "ORDERS"),
        "durable": param(NAME, "The durable consumer's name: the server keeps its place across restarts.",
                         "headrace_orders"),
        "subject": param(SUBJECT, "A new consumer's filter subject (wildcards allowed); unset: every subject "
                         "of the stream. Also the subject of a stream `create_stream` makes.", "orders.>"),
        "deliver": param({"enum": [ALL, NEW]}, "Where a new consumer starts: `all` from the stream's first "
                         "message, `new` with messages published from now on.", NEW, default=ALL),
        "format": param({"enum": [JSON, TEXT]}, "`json`: each payload is a JSON object, the event; `text`: "
                        "the event is `{payload: <the payload as text>}`.", TEXT, default=JSON),
        "batch_size": param({"type": "integer", "minimum": 1, "maximum": 10000},
                            "The most messages one fetch asks for.", 1000, default=READ_BATCH),
        "fetch_timeout": param(POSITIVE_DURATION, "How long a fetch waits for a first message before it asks "
                               "again.", "2s", default=FETCH_TIMEOUT),
        "ack_wait": param(POSITIVE_DURATION, "A new consumer's ack wait: a message not acknowledged within it "
                          "is delivered again.", "1m", default=ACK_WAIT),
        "create_stream": param({"type": "boolean"}, "Make the stream (file storage, `subject`) when it does "
                               "not exist, instead of failing.", True, default=False),
    }, required=("stream", "durable")),
    factory=make_nats_read,
    parse=parse_nats_read,
    checks=check_nats_read,
    output=FRESH,  # each event is decoded from its message: nobody else holds it
    secrets=("servers", "password", "token"),
    acknowledges=True,  # JetStream acks in handed_on(): engine validate warns without a durable output edge
    example="type: nats.read\nwith: {servers: \"nats://127.0.0.1:4222\", stream: ORDERS, subject: \"orders.>\", "
            "durable: headrace_orders}",
)

NATS_WRITE: Final = NodeSpec(
    name="nats.write",
    kind=SINK,
    since=2,  # introduced with format 2
    summary="Publishes each event as a JSON message; with `jetstream: true` a batch is done once the stream "
            "acknowledged every message, on core NATS once the server has them (a flush). See "
            "[Connectors](connectors.md#nats-jetstream).",
    params=params_schema({
        **common(),
        "subject": param(SUBJECT, "The subject to publish on (the fallback, with `subject_field`).",
                         "orders.created"),
        "subject_field": param({"type": "string", "minLength": 1}, "Take each message's subject from this "
                               "event field.", "topic"),
        "jetstream": param({"type": "boolean"}, "Wait for the stream's acknowledgement of each message; "
                           "`false`: core NATS publish and flush (nothing is stored).", False, default=True),
        "format": param({"enum": [JSON, TEXT]}, "`json`: the event as a JSON object; `text`: the event's "
                        "`payload` field as it is.", TEXT, default=JSON),
        "timeout": param(POSITIVE_DURATION, "The longest wait for a batch's acknowledgements (or flush) "
                         "before the unconfirmed messages are sent again.", "30s", default=PUBLISH_TIMEOUT),
        "dedup": param({"type": "boolean"}, "Give each event a `Nats-Msg-Id` kept across resends, so the "
                       "stream stores a resent message once (JetStream only).", False, default=True),
    }),
    factory=make_nats_write,
    parse=parse_nats_write,
    checks=check_nats_write,
    secrets=("servers", "password", "token"),
    example="type: nats.write\nfrom: shaped\nwith: {servers: \"nats://127.0.0.1:4222\", subject: orders.created}",
)

SPECS: Final = (NATS_READ, NATS_WRITE)
