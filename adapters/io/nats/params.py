"""The parameters of `nats.read` and `nats.write`, apart from their nodes so that reading a
graph never loads nats-py (the nodes import it when a graph runs them)."""

from dataclasses import dataclass
from typing import Final

from engine.durations import duration_ms
from engine.findings import Finding
from engine.params import Raw, expect, flag, mapping, text_of, texts, whole

DEFAULT_SERVER: Final = "nats://127.0.0.1:4222"
JSON: Final = "json"
TEXT: Final = "text"
ALL: Final = "all"
NEW: Final = "new"
READ_BATCH: Final = 500
FETCH_TIMEOUT: Final = "1s"
ACK_WAIT: Final = "30s"
PUBLISH_TIMEOUT: Final = "10s"
MISSING_KEY: Final = "HR020"


def seconds(duration: str, fallback: str) -> float:
    """A duration in seconds; `fallback` where it is not one (or is zero)."""
    return (duration_ms(duration) or duration_ms(fallback) or 0) / 1000.0


@dataclass(frozen=True)
class Tls:
    """TLS to the server: the CA to trust (else the system's), a client certificate."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class Auth:
    """How the node logs in, besides `user:password@` in a server URL."""

    user: str = ""
    password: str = ""
    token: str = ""
    creds_file: str = ""  # a decentralized-auth `.creds` file (JWT and NKey seed)
    tls: Tls | None = None


@dataclass(frozen=True)
class NatsReadParams:
    stream: str
    durable: str
    servers: tuple[str, ...] = (DEFAULT_SERVER,)
    subject: str = ""  # the consumer's filter; "" takes every subject of the stream
    deliver: str = ALL  # where a new consumer starts: the stream's first message, or new ones only
    format: str = JSON
    batch_size: int = READ_BATCH  # the most messages one `read` fetches
    fetch_timeout: str = FETCH_TIMEOUT  # the longest one fetch waits for a first message
    ack_wait: str = ACK_WAIT  # a new consumer's: an unacknowledged message comes back after it
    create_stream: bool = False
    auth: Auth = Auth()


@dataclass(frozen=True)
class NatsWriteParams:
    servers: tuple[str, ...] = (DEFAULT_SERVER,)
    subject: str = ""
    subject_field: str = ""  # the subject is this field of each event (else `subject`)
    jetstream: bool = True
    format: str = JSON
    timeout: str = PUBLISH_TIMEOUT  # the longest wait for a batch's acks (JetStream) or flush
    dedup: bool = True  # a `Nats-Msg-Id` per event, so a retried batch is stored once
    auth: Auth = Auth()


def servers_of(raw: Raw) -> tuple[str, ...]:
    value = raw.get("servers")
    if isinstance(value, str):
        return (value,)
    return texts(raw, "servers") or (DEFAULT_SERVER,)


def auth_of(raw: Raw) -> Auth:
    tls = mapping(raw, "tls")
    return Auth(text_of(raw, "user"), text_of(raw, "password"), text_of(raw, "token"), text_of(raw, "creds_file"),
                None if tls is None else Tls(text_of(tls, "ca_file"), text_of(tls, "cert_file"),
                                             text_of(tls, "key_file"), flag(tls, "insecure_skip_verify")))


def parse_nats_read(raw: Raw) -> NatsReadParams:
    return NatsReadParams(
        text_of(raw, "stream"), text_of(raw, "durable"), servers_of(raw), text_of(raw, "subject"),
        text_of(raw, "deliver", ALL), text_of(raw, "format", JSON), whole(raw, "batch_size", READ_BATCH),
        text_of(raw, "fetch_timeout", FETCH_TIMEOUT), text_of(raw, "ack_wait", ACK_WAIT),
        flag(raw, "create_stream"), auth_of(raw))


def parse_nats_write(raw: Raw) -> NatsWriteParams:
    return NatsWriteParams(
        servers_of(raw), text_of(raw, "subject"), text_of(raw, "subject_field"), flag(raw, "jetstream", True),
        text_of(raw, "format", JSON), text_of(raw, "timeout", PUBLISH_TIMEOUT), flag(raw, "dedup", True),
        auth_of(raw))


def check_nats_read(params: object) -> list[Finding]:
    read = expect(params, NatsReadParams)
    if read.create_stream and not read.subject:
        return [Finding(MISSING_KEY, ("subject",), "`create_stream: true` needs a `subject` for the new stream",
                        "add `subject: orders.>` (the subjects the stream takes)", at_key=True)]
    return []


def check_nats_write(params: object) -> list[Finding]:
    write = expect(params, NatsWriteParams)
    if not write.subject and not write.subject_field:
        return [Finding(MISSING_KEY, ("subject",), "`nats.write` needs a `subject` or a `subject_field`",
                        "add `subject: orders.created`", at_key=True)]
    return []
