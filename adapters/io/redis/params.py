"""The parameters of `redis.read` and `redis.write`, apart from their nodes so that reading
a graph never loads redis-py (the nodes import it when a graph uses them)."""

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from engine.durations import duration_ms
from engine.params import Raw, flag, mapping, optional_whole, text_of, whole

FIELDS: Final = "fields"
JSON: Final = "json"
START_OLDEST: Final = "0"
START_NEW: Final = "$"
GROUP: Final = "headrace"
PAYLOAD_FIELD: Final = "data"
READ_BATCH: Final = 500
BLOCK: Final = "1s"
TIMEOUT: Final = "10s"


@dataclass(frozen=True)
class TlsParams:
    """TLS beyond what `rediss://` turns on; None fields keep redis-py's defaults."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class Connection:
    url: str  # redis://[user[:password]@]host[:port][/db], rediss://..., unix://path
    password: str | None = None  # instead of the URL's (kept out of the URL: ${REDIS_PASSWORD})
    timeout: str = TIMEOUT  # connecting, and each command beyond its own blocking time
    tls: TlsParams | None = None  # given: TLS even for a redis:// URL


@dataclass(frozen=True)
class RedisReadParams:
    connection: Connection
    stream: str
    group: str = GROUP
    consumer: str = ""  # "": `graph.node`, stable across restarts so its pending entries come back
    start: str = START_OLDEST  # where a group created by the node starts
    decode: str = FIELDS
    field: str = PAYLOAD_FIELD  # decode: json
    id_field: str = ""  # "": the entry id is not put in the event
    batch_size: int = READ_BATCH  # XREADGROUP COUNT
    block: str = BLOCK  # XREADGROUP BLOCK: how long one read waits for new entries


@dataclass(frozen=True)
class RedisWriteParams:
    connection: Connection
    stream: str
    maxlen: int | None = None  # XADD MAXLEN ~ (approximate trimming)
    encode: str = FIELDS
    field: str = PAYLOAD_FIELD  # encode: json


def _optional_text(raw: Raw, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def parse_tls(raw: Raw) -> TlsParams | None:
    tls = mapping(raw, "tls")
    if tls is None:
        return None
    return TlsParams(_optional_text(tls, "ca_file"), _optional_text(tls, "cert_file"),
                     _optional_text(tls, "key_file"), flag(tls, "insecure_skip_verify"))


def parse_connection(raw: Raw) -> Connection:
    return Connection(text_of(raw, "url"), _optional_text(raw, "password"), text_of(raw, "timeout", TIMEOUT),
                      parse_tls(raw))


def parse_redis_read(raw: Raw) -> RedisReadParams:
    return RedisReadParams(
        parse_connection(raw), text_of(raw, "stream"), text_of(raw, "group", GROUP), text_of(raw, "consumer"),
        text_of(raw, "start", START_OLDEST), text_of(raw, "decode", FIELDS), text_of(raw, "field", PAYLOAD_FIELD),
        text_of(raw, "id_field"), whole(raw, "batch_size", READ_BATCH), text_of(raw, "block", BLOCK))


def parse_redis_write(raw: Raw) -> RedisWriteParams:
    return RedisWriteParams(parse_connection(raw), text_of(raw, "stream"), optional_whole(raw, "maxlen"),
                            text_of(raw, "encode", FIELDS), text_of(raw, "field", PAYLOAD_FIELD))


def seconds(duration: str, fallback: str) -> float:
    """A duration in seconds; `fallback` where it is not one."""
    ms = duration_ms(duration)
    return (ms if ms is not None else duration_ms(fallback) or 0) / 1000.0


def shown_address(url: str) -> str:
    """Where the URL points, as errors and logs show it: `host:port/db`, never the
    credentials (`unix:` URLs: the socket's path)."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        host = parts.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        db = unquote(parts.path.lstrip("/")) or "0"
        return f"{host}:{parts.port or 6379}/{db}"
    except ValueError:  # a malformed port: still say nothing secret
        return "(malformed redis URL)"
