"""Specs of the Redis Streams node types: `redis.read` and `redis.write` (docs/connectors.md).
redis-py loads only when a graph runs one of them."""

from typing import Final

from adapters.io.redis.params import (
    BLOCK,
    FIELDS,
    GROUP,
    JSON,
    PAYLOAD_FIELD,
    READ_BATCH,
    START_NEW,
    START_OLDEST,
    TIMEOUT,
    parse_redis_read,
    parse_redis_write,
)
from engine.node import AsyncSink, AsyncSource, NodeContext
from engine.spec import FRESH, SINK, SOURCE, NodeSpec, param, params_schema

POSITIVE_DURATION: Final[dict[str, object]] = {"type": "string", "pattern": "^0*[1-9][0-9]*(ms|s|m|h|d)$"}
NAME: Final[dict[str, object]] = {"type": "string", "minLength": 1}
SECRETS: Final = ("url", "password")

CONNECTION: Final[dict[str, dict[str, object]]] = {
    "url": param({"type": "string", "pattern": "^(redis|rediss|unix)://\\S*$"},
                 "`redis://[user[:password]@]host[:port][/db]`; `rediss://` for TLS; `unix:///path/to.sock`. "
                 "Its password is secret: shown as `****`.", "redis://127.0.0.1:6379/0"),
    "password": param({"type": "string"}, "The password, instead of one in the URL (secret).",
                      "${REDIS_PASSWORD}"),
    "timeout": param(POSITIVE_DURATION, "Limit for connecting and for each command (beyond `block`).", "10s",
                     default=TIMEOUT),
    "tls": param({"type": "object", "additionalProperties": False, "properties": {
        "ca_file": {"type": "string", "minLength": 1, "description": "PEM file of the CAs to trust."},
        "cert_file": {"type": "string", "minLength": 1, "description": "Client certificate (PEM), for mTLS."},
        "key_file": {"type": "string", "minLength": 1, "description": "The client certificate's key (PEM)."},
        "insecure_skip_verify": {"type": "boolean", "description": "Do not verify the server's certificate "
                                 "(tests only)."},
    }}, "TLS settings; given, TLS is used even for a `redis://` URL.", {"ca_file": "certs/ca.pem"}),
}


def make_redis_read(ctx: NodeContext) -> AsyncSource:
    from adapters.io.redis.read import RedisRead  # redis-py loads only for graphs that use it
    return RedisRead(ctx)


def make_redis_write(ctx: NodeContext) -> AsyncSink:
    from adapters.io.redis.write import RedisWrite
    return RedisWrite(ctx)


REDIS_READ: Final = NodeSpec(
    name="redis.read",
    kind=SOURCE,
    since=2,  # introduced with format 2, whose `edge: {durable: true}` makes its delivery at-least-once
    summary="Reads a Redis stream as a consumer of a consumer group (XREADGROUP; the group is created "
            "when missing). Entries are acknowledged (XACK) once handed on, after the commit when the "
            "output edge is durable: at least once across a crash. See [Connectors](connectors.md#redis-streams).",
    params=params_schema({
        **CONNECTION,
        "stream": param(NAME, "The stream's key.", "orders"),
        "group": param(NAME, "The consumer group.", "billing", default=GROUP),
        "consumer": param(NAME, "This reader's name in the group; keep it stable, its pending entries are "
                          "read again after a restart. Default: `GRAPH.NODE`.", "billing-1"),
        "start": param({"enum": [START_OLDEST, START_NEW]},
                       "Where a group the node creates starts: `0` the whole stream, `$` only new entries.",
                       START_NEW, default=START_OLDEST),
        "decode": param({"enum": [FIELDS, JSON]},
                        "`fields`: the entry's fields, as text; `json`: the JSON object in `field`.", JSON,
                        default=FIELDS),
        "field": param(NAME, "The field that holds the JSON text (`decode: json`).", "payload",
                       default=PAYLOAD_FIELD),
        "id_field": param(NAME, "Put the entry id (`1712345678901-0`) in the event under this name; "
                          "default: not at all.", "_id"),
        "batch_size": param({"type": "integer", "minimum": 1, "maximum": 100000},
                            "Most entries per read (XREADGROUP COUNT).", 1000, default=READ_BATCH),
        "block": param(POSITIVE_DURATION, "How long one read waits for new entries (XREADGROUP BLOCK).", "5s",
                       default=BLOCK),
    }, required=("url", "stream")),
    factory=make_redis_read,
    parse=parse_redis_read,
    output=FRESH,  # each event is a dict made from the entry: nobody else holds it
    secrets=SECRETS,
    acknowledges=True,  # XACK in handed_on(): engine validate warns without a durable output edge
    example="type: redis.read\nwith: {url: \"redis://127.0.0.1:6379/0\", stream: orders, group: billing, "
            "decode: json}",
)

REDIS_WRITE: Final = NodeSpec(
    name="redis.write",
    kind=SINK,
    since=2,  # introduced with format 2
    summary="Appends each event to a Redis stream (XADD, one pipeline per batch, trimmed to about "
            "`maxlen`); a batch is done once the server has answered every entry. "
            "See [Connectors](connectors.md#redis-streams).",
    params=params_schema({
        **CONNECTION,
        "stream": param(NAME, "The stream's key (created by the first entry).", "orders"),
        "maxlen": param({"type": "integer", "minimum": 1},
                        "Trim the stream to about this many entries (`MAXLEN ~`); default: never trimmed.",
                        1000000),
        "encode": param({"enum": [FIELDS, JSON]},
                        "`fields`: one entry field per top-level event field (text as is, anything else as "
                        "JSON text); `json`: the whole event as JSON text in `field`.", JSON, default=FIELDS),
        "field": param(NAME, "The field that holds the JSON text (`encode: json`).", "payload",
                       default=PAYLOAD_FIELD),
    }, required=("url", "stream")),
    factory=make_redis_write,
    parse=parse_redis_write,
    secrets=SECRETS,
    example="type: redis.write\nfrom: shaped\nwith: {url: \"redis://127.0.0.1:6379/0\", stream: shipped, "
            "maxlen: 1000000}",
)

SPECS: Final = (REDIS_READ, REDIS_WRITE)
