"""One nats-py connection of a `nats.read` or `nats.write` node, and which of its errors are
permanent.

nats-py can reconnect by itself (and buffers publishes meanwhile); here it is told not to
(`allow_reconnect=False`): a lost connection closes the client, the node's next operation
fails, and `adapters.io.reconnect.Link` connects a new client with its capped, jittered
backoff. One reconnect loop, not two: `engine ctl status` shows exactly what the node is
doing, a stop of the graph ends the wait at once, and no publish sits unseen in a buffer
of nats-py while the server is away (the sink resends the batch's unacknowledged messages
itself). A reader's consumer lives on the server, so a new client just binds to it again.
"""

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

from adapters.io.nats.params import Auth
from adapters.io.reconnect import CLOSED, CONNECTED, RECONNECTING, Link

CONNECT_TIMEOUT_S: Final = 5
# nats-py tries each server of the list twice per connect (and forever with 0 or less).
CONNECT_ATTEMPTS: Final = 1
RETRY_SAME_SERVER_S: Final = 0.1
PING_INTERVAL_S: Final = 5  # a silently dead server is noticed after two unanswered pings
PERMANENT_WORDS: Final = ("authorization violation", "authentication", "permissions violation",
                          "user authentication expired", "account authentication expired")


class Permanent(Exception):
    """A problem waiting cannot fix: the stream does not exist, a subject is invalid. The
    message is the one line the user sees after the node's name."""


def where(servers: tuple[str, ...]) -> str:
    """The servers as logs show them: `host:port` only (a URL may carry a password)."""
    shown = []
    for server in servers:
        parts = urlsplit(server if "://" in server else "nats://" + server)
        try:
            port = parts.port or 4222
        except ValueError:
            port = 4222
        shown.append(f"{parts.hostname or '?'}:{port}")
    return ",".join(shown)


def classify(error: BaseException) -> str | None:
    """None for an error that may pass (refused, lost, timed out, no responders while a
    server restarts); else the line to fail with."""
    import nats.errors

    if isinstance(error, Permanent):
        return str(error)
    if isinstance(error, nats.errors.BadSubjectError):
        return "invalid subject (NATS subjects are tokens separated by '.', without spaces)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate is not trusted ({error.verify_message}); set tls.ca_file"
    if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return f"cannot read {error.filename}: {error.strerror}"
    if isinstance(error, nats.errors.AuthorizationError):
        return "the server refused the credentials (authorization violation): check user/password, token or creds_file"
    text = str(error).lower()
    if isinstance(error, nats.errors.Error) and any(word in text for word in PERMANENT_WORDS):
        words = next(word for word in PERMANENT_WORDS if word in text)
        return f"the server refused the credentials ({words}): check user/password, token or creds_file"
    return None


def tls_context(auth: Auth) -> ssl.SSLContext | None:
    tls = auth.tls
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=tls.ca_file or None)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file or None)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def connect(servers: tuple[str, ...], auth: Auth, node: str, on_error: Any) -> Any:
    """A connected nats-py client. Credentials in a server URL win over `user`/`password`;
    nats-py reads those itself."""
    import nats

    options: dict[str, Any] = {
        "servers": list(servers), "name": f"headrace {node}", "allow_reconnect": False,
        "max_reconnect_attempts": CONNECT_ATTEMPTS, "reconnect_time_wait": RETRY_SAME_SERVER_S,
        "connect_timeout": CONNECT_TIMEOUT_S, "ping_interval": PING_INTERVAL_S, "error_cb": on_error,
        "tls": tls_context(auth),
    }
    if auth.user:
        options["user"], options["password"] = auth.user, auth.password
    if auth.token:
        options["token"] = auth.token
    if auth.creds_file:
        with open(auth.creds_file, "rb"):
            pass  # a missing file is a permanent problem here, not a retried one inside nats-py
        options["user_credentials"] = auth.creds_file
    if any(s.startswith("tls://") for s in servers) and options["tls"] is None:
        options["tls"] = ssl.create_default_context()
    return await nats.connect(**options)


async def first_connect(link: Link, connect: Callable[[], Awaitable[None]]) -> None:
    """One attempt at `open`: a permanent problem fails the node now; a transient one is
    left to the first read or write, which reconnects through `link` where a stop of the
    graph can cancel the wait (the runtime cannot cancel `open`)."""
    try:
        await connect()
        link.state = CONNECTED
    except Exception as error:
        if classify(error) is not None:
            link.state = CLOSED
            raise link.failure(error) from None
        link.state = RECONNECTING
        link.last_error = f"{type(error).__name__}: {error}"[:200]


async def close_quietly(client: Any) -> None:
    """Close a client that may already be closed or half-dead, without waiting long."""
    if client is None or client.is_closed:
        return
    # Timed out, or nats-py's own errors from a connection already gone: nothing to keep.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), CONNECT_TIMEOUT_S)
