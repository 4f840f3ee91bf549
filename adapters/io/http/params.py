"""The parameters of `http.listen` and `http.post`, apart from their nodes so that
reading a graph never loads aiohttp (the nodes import it when a graph uses them)."""

from dataclasses import dataclass
from typing import Final

from engine.durations import duration_ms
from engine.params import NO_PAIRS, Pairs, Raw, pairs, text_of, whole

JSON: Final = "json"
NDJSON: Final = "ndjson"
LISTEN_ADDRESS: Final = "127.0.0.1:8080"
LISTEN_PATH: Final = "/"
MAX_BODY_BYTES: Final = 1_048_576
QUEUE_BATCHES: Final = 4
ACCEPT_TIMEOUT: Final = "5s"
BATCH_SIZE: Final = 500
POST_TIMEOUT: Final = "10s"
RETRIES: Final = 3
BACKOFF: Final = "200ms"


def seconds(duration: str, fallback: str) -> float:
    """A duration in seconds; `fallback` where it is not one (or is zero)."""
    return (duration_ms(duration) or duration_ms(fallback) or 0) / 1000.0


@dataclass(frozen=True)
class HttpListenParams:
    address: str = LISTEN_ADDRESS  # `host:port`, `[v6]:port`
    path: str = LISTEN_PATH
    format: str = JSON  # for bodies whose Content-Type does not say
    token: str | None = None  # None: no `Authorization` needed
    max_body_bytes: int = MAX_BODY_BYTES
    queue_batches: int = QUEUE_BATCHES
    accept_timeout: str = ACCEPT_TIMEOUT


def parse_http_listen(raw: Raw) -> HttpListenParams:
    token = raw.get("token")
    return HttpListenParams(
        text_of(raw, "address", LISTEN_ADDRESS), text_of(raw, "path", LISTEN_PATH), text_of(raw, "format", JSON),
        token if isinstance(token, str) else None, whole(raw, "max_body_bytes", MAX_BODY_BYTES),
        whole(raw, "queue_batches", QUEUE_BATCHES), text_of(raw, "accept_timeout", ACCEPT_TIMEOUT))


@dataclass(frozen=True)
class HttpPostParams:
    url: str
    format: str = JSON
    batch_size: int = BATCH_SIZE  # events per request
    timeout: str = POST_TIMEOUT  # one request, connecting included
    retries: int = RETRIES
    backoff: str = BACKOFF  # before the first retry, doubled each time
    headers: Pairs = NO_PAIRS


def parse_http_post(raw: Raw) -> HttpPostParams:
    return HttpPostParams(
        text_of(raw, "url"), text_of(raw, "format", JSON), whole(raw, "batch_size", BATCH_SIZE),
        text_of(raw, "timeout", POST_TIMEOUT), whole(raw, "retries", RETRIES), text_of(raw, "backoff", BACKOFF),
        pairs(raw, "headers"))
