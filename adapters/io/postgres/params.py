"""The parameters of `postgres.read` and `postgres.write`, apart from their nodes so that
reading a graph never loads psycopg (the nodes import it when a graph runs them)."""

from dataclasses import dataclass
from typing import Final

from engine.durations import duration_ms
from engine.params import Raw, flag, mapping, names, text_of, whole

INSERT: Final = "insert"
UPSERT: Final = "upsert"
WRITE_BATCH: Final = 1000
READ_BATCH: Final = 1000
POLL_INTERVAL: Final = "1s"
CONNECT_TIMEOUT: Final = "10s"


@dataclass(frozen=True)
class Tls:
    """`tls:`, mapped onto libpq's ssl* options (a DSN's own sslmode etc. work too)."""

    enabled: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class Server:
    """Where and how to connect; shared by both node types."""

    dsn: str
    password: str = ""  # overrides the DSN's
    connect_timeout: str = CONNECT_TIMEOUT
    tls: Tls = Tls()


@dataclass(frozen=True)
class PostgresWriteParams:
    server: Server
    table: str
    mode: str = INSERT
    key: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # (): each event's own fields
    batch_size: int = WRITE_BATCH


@dataclass(frozen=True)
class Cursor:
    field: str
    start: object  # bound to %(cursor)s before the first row was read


@dataclass(frozen=True)
class PostgresReadParams:
    server: Server
    query: str
    cursor: Cursor
    poll_interval: str = POLL_INTERVAL
    batch_size: int = READ_BATCH


def seconds(duration: str, fallback: str) -> float:
    return (duration_ms(duration) or duration_ms(fallback) or 0) / 1000.0


def connect_options(server: Server) -> dict[str, object]:
    """Keyword arguments for psycopg's connect besides the DSN: they override its own."""
    options: dict[str, object] = {"connect_timeout": max(1, int(seconds(server.connect_timeout, CONNECT_TIMEOUT)))}
    if server.password:
        options["password"] = server.password
    tls = server.tls
    if tls.enabled:
        # verify-full checks the chain and the host name; skipping verification still encrypts.
        options["sslmode"] = "require" if tls.insecure_skip_verify else "verify-full"
        for key, value in (("sslrootcert", tls.ca_file), ("sslcert", tls.cert_file), ("sslkey", tls.key_file)):
            if value:
                options[key] = value
    return options


def parse_server(raw: Raw) -> Server:
    block = mapping(raw, "tls")
    tls = Tls() if block is None else Tls(
        True, text_of(block, "ca_file"), text_of(block, "cert_file"), text_of(block, "key_file"),
        flag(block, "insecure_skip_verify"))
    return Server(text_of(raw, "dsn"), text_of(raw, "password"), text_of(raw, "connect_timeout", CONNECT_TIMEOUT),
                  tls)


def parse_postgres_write(raw: Raw) -> PostgresWriteParams:
    return PostgresWriteParams(
        parse_server(raw), text_of(raw, "table"), text_of(raw, "mode", INSERT), names(raw, "key"),
        names(raw, "columns"), whole(raw, "batch_size", WRITE_BATCH))


def parse_postgres_read(raw: Raw) -> PostgresReadParams:
    block = mapping(raw, "cursor") or {}
    return PostgresReadParams(
        parse_server(raw), text_of(raw, "query"), Cursor(text_of(block, "field"), block.get("start")),
        text_of(raw, "poll_interval", POLL_INTERVAL), whole(raw, "batch_size", READ_BATCH))
