"""Specs of the HTTP node types: `http.listen` and `http.post` (docs/http.md). aiohttp loads
only when a graph runs one of them."""

from typing import Final

from adapters.io.http.params import (
    ACCEPT_TIMEOUT,
    BACKOFF,
    BATCH_SIZE,
    JSON,
    LISTEN_ADDRESS,
    LISTEN_PATH,
    MAX_BODY_BYTES,
    NDJSON,
    POST_TIMEOUT,
    QUEUE_BATCHES,
    RETRIES,
    parse_http_listen,
    parse_http_post,
)
from engine.node import AsyncSink, AsyncSource, NodeContext
from engine.spec import DURATION, SINK, SOURCE, NodeSpec, param, params_schema

HTTP_FORMATS: Final = [JSON, NDJSON]
_PORT: Final = "([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
ADDRESS: Final[dict[str, object]] = {
    "type": "string", "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):" + _PORT + "$"}
POSITIVE_DURATION: Final[dict[str, object]] = {"type": "string", "pattern": "^0*[1-9][0-9]*(ms|s|m|h|d)$"}


def make_http_listen(ctx: NodeContext) -> AsyncSource:
    from adapters.io.http.listen import HttpListen  # aiohttp loads only for graphs that use it
    return HttpListen(ctx)


def make_http_post(ctx: NodeContext) -> AsyncSink:
    from adapters.io.http.post import HttpPost
    return HttpPost(ctx)


HTTP_LISTEN: Final = NodeSpec(
    name="http.listen",
    kind=SOURCE,
    summary="Receives events over HTTP: each POST of a JSON object, a JSON array of objects or "
            "NDJSON becomes one batch, answered 202 once the graph has taken it (once it is "
            "committed, when the output edge is durable), or 503 with `Retry-After` while the "
            "graph is not keeping up. See [HTTP in and out](http.md).",
    params=params_schema({
        "address": param(ADDRESS, "`host:port` to listen on (`[::1]:8080` for IPv6); port 0 picks a free port. "
                         "Anything but loopback should have a `token`.", "0.0.0.0:8080",
                         default=LISTEN_ADDRESS),
        "path": param({"type": "string", "pattern": "^/"}, "The one path that accepts events.", "/events",
                      default=LISTEN_PATH),
        "format": param({"enum": HTTP_FORMATS},
                        "Body encoding when the request's Content-Type does not say "
                        "(`application/json`, `application/x-ndjson`).", NDJSON, default=JSON),
        "token": param({"type": "string", "minLength": 1},
                       "Require `Authorization: Bearer <token>`; anything else is answered 401.",
                       "${INGEST_TOKEN}"),
        "max_body_bytes": param({"type": "integer", "minimum": 1}, "Larger bodies are answered 413.",
                                10485760, default=MAX_BODY_BYTES),
        "queue_batches": param({"type": "integer", "minimum": 1, "maximum": 1024},
                               "Requests waiting for the graph before new ones are answered 503.", 16,
                               default=QUEUE_BATCHES),
        "accept_timeout": param(POSITIVE_DURATION,
                                "How long a request waits for the graph to take its events before it is "
                                "answered 503 (and nothing from it is kept).", "30s", default=ACCEPT_TIMEOUT),
    }),
    factory=make_http_listen,
    parse=parse_http_listen,
    secrets=("token",),
    example="type: http.listen\nwith: {address: \"127.0.0.1:8080\", path: /events, format: ndjson}",
)

HTTP_POST: Final = NodeSpec(
    name="http.post",
    kind=SINK,
    summary="Sends events to an HTTP endpoint, `batch_size` per POST as a JSON array or NDJSON; "
            "retries connection errors, timeouts, 429 and 5xx with exponential backoff, then applies "
            "`on_error`. See [HTTP in and out](http.md).",
    params=params_schema({
        "url": param({"type": "string", "pattern": "^https?://[^/\\s?#]+([/?#]\\S*)?$"},
                     "Where to POST.", "https://collector.example.com/ingest"),
        "format": param({"enum": HTTP_FORMATS}, "`json`: one array per request; `ndjson`: one object per line.",
                        NDJSON, default=JSON),
        "batch_size": param({"type": "integer", "minimum": 1, "maximum": 100000}, "Most events per request.",
                            100, default=BATCH_SIZE),
        "timeout": param(POSITIVE_DURATION, "Limit for one request, connecting included.", "30s",
                         default=POST_TIMEOUT),
        "retries": param({"type": "integer", "minimum": 0, "maximum": 100},
                         "Attempts after the first for errors that may pass.", 5, default=RETRIES),
        "backoff": param(DURATION, "Wait before the first retry; doubled each time (with jitter, at most "
                         "30 s). A `Retry-After` answer replaces it.", "1s", default=BACKOFF),
        "headers": param({"type": "object", "additionalProperties": {"type": "string"}},
                         "Extra request headers. Content-Type follows `format` unless set here.",
                         {"Authorization": "Bearer ${COLLECTOR_TOKEN}"}),
    }, required=("url",)),
    factory=make_http_post,
    parse=parse_http_post,
    # Header values carry credentials (`Authorization`), so every value is masked; a URL's
    # password part too (`https://user:****@host`).
    secrets=("url", "headers"),
    example="type: http.post\nfrom: shaped\nwith: {url: \"https://collector.example.com/ingest\", format: ndjson}",
)

SPECS: Final = (HTTP_LISTEN, HTTP_POST)
