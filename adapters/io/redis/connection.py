"""The redis-py client of `redis.read` and `redis.write`, and which of its errors are
permanent (a wrong password, a key that is not a stream) and which pass (a dropped
connection, a server loading its data or busy with a script).

redis-py's own retries are turned off: the node's `Link` reconnects instead, so the stats
show the state and count, and a stop of the graph ends the wait at once.
"""

import contextlib
import ssl
from typing import TYPE_CHECKING, Any, Final

from adapters.io.client import require
from adapters.io.redis.params import TIMEOUT, Connection, seconds, shown_address
from engine.node import NodeContext

if TYPE_CHECKING:
    from redis.asyncio import Redis

EXTRA: Final = "redis"
# Answers that may pass by waiting: the server loads its data, runs a long script, is out
# of memory until consumers trim, or a replica has lost its master for a moment.
PASSING: Final = ("LOADING", "BUSY ", "OOM", "TRYAGAIN", "MASTERDOWN", "NOGROUP")
# Waiting does not fix a certificate (redis-py wraps ssl's errors in its ConnectionError).
TLS_FAULTS: Final = ("certificate verify failed", "wrong_version_number", "wrong version number")


def client_library(ctx: NodeContext) -> Any:
    """redis.asyncio, or NodeFailure naming the extra to install."""
    require("redis", EXTRA, ctx.name)
    return require("redis.asyncio", EXTRA, ctx.name)


def make_client(ctx: NodeContext, connection: Connection, blocking_s: float = 0.0) -> "Redis":
    """A client for `connection`. Commands that block on the server (XREADGROUP BLOCK) get
    `blocking_s` more than the timeout before the socket gives up."""
    aioredis = client_library(ctx)
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    timeout_s = seconds(connection.timeout, TIMEOUT)
    url = connection.url
    options: dict[str, Any] = {}
    tls = connection.tls
    if tls is not None:
        if url.startswith("redis://"):
            url = "rediss://" + url.removeprefix("redis://")  # a `tls:` block turns TLS on
        options.update(ssl_ca_certs=tls.ca_file, ssl_certfile=tls.cert_file, ssl_keyfile=tls.key_file)
        if tls.insecure_skip_verify:
            options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    if connection.password is not None:
        options["password"] = connection.password
    return aioredis.Redis.from_url(  # type: ignore[no-any-return]
        url, decode_responses=True, encoding_errors="replace", protocol=2,
        socket_connect_timeout=timeout_s, socket_timeout=timeout_s + blocking_s,
        retry=Retry(NoBackoff(), 0), client_name=f"headrace:{ctx.graph or 'graph'}.{ctx.name}", **options)


async def close_quietly(client: "Redis") -> None:
    """Close a client whose connection may be broken (then it is gone anyway)."""
    with contextlib.suppress(Exception):
        await client.aclose()


def classify(url: str, stream: str) -> Any:
    """The `classify` of the node's Link: None for an error that may pass, else the one
    line that says what is wrong (host:port/db, never the URL)."""
    where = shown_address(url)

    def permanent(error: BaseException) -> str | None:
        from redis import exceptions as e

        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, (e.AuthenticationError, e.AuthenticationWrongNumberOfArgsError)):
            return f"redis at {where} refused the credentials: {text} (check the URL's user and password)"
        if isinstance(error, (e.AuthorizationError, e.NoPermissionError)):
            return f"redis at {where}: no permission: {text} (the user's ACL must allow the stream commands)"
        if isinstance(error, ssl.SSLCertVerificationError) or any(mark in text.lower() for mark in TLS_FAULTS):
            return f"TLS with redis at {where} failed: {text} (check `tls:` and the URL's scheme)"
        if isinstance(error, (e.ConnectionError, e.TimeoutError, OSError, TimeoutError)):
            return None  # refused, dropped, timed out, loading (BusyLoadingError), too many clients
        if isinstance(error, e.ResponseError):
            if text.startswith("WRONGTYPE"):
                return f"the key '{stream}' at redis {where} is not a stream: {text}"
            if text.startswith(PASSING):
                return None
            return f"redis at {where} refused a command: {text}"
        if isinstance(error, e.RedisError):
            return f"redis at {where}: {text}"
        return f"redis at {where}: {type(error).__name__}: {text}"

    return permanent
