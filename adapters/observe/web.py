"""HTTP endpoints served on the engine's own event loop (aiohttp): `/metrics` and the inspector.

Why on the loop and not on a thread: a request then runs between two batches, reads the
counters directly (no hand-off, no half-done batch) and answers in milliseconds. On a thread
of its own, a request to a graph running flat out waited seconds for the GIL, which the
loop wins back after every batch, and every batch paid for waking the waiting threads
(bench/metrics_bench.py, docs/performance.md).

The socket is bound when the endpoint is made, before anything else starts, so a bad
address or a port in use is a one-line error and nothing runs half-configured.

The token rule is the control plane's: with a `control_token`, a request must send it
unless `public`; without a token, a non-loopback address is refused unless `public`.
"""

import hmac
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from adapters.control.auth import is_loopback
from adapters.observe import MetricsError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BACKLOG: Final = 128


@dataclass(frozen=True)
class Naming:
    """How an endpoint's errors name it: `what` (metrics, the inspector), its settings key,
    an example address, and what anyone could do were it public."""

    what: str
    setting: str
    example: str
    public_means: str
    error: type[MetricsError] = MetricsError


def host_port(address: str, naming: Naming) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise naming.error(f"{naming.setting.replace('_', ' ')} {address!r} is not HOST:PORT "
                           f"(e.g. {naming.example})")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_bind(address: str, token: str | None, public: bool, naming: Naming) -> None:
    if token is None and not public and not is_loopback(address):
        raise naming.error(f"refusing to serve {naming.what} on {address} without a token: set control_token "
                           f"(HEADRACE_CONTROL_TOKEN) so requests must send it, set metrics_public = true "
                           f"(HEADRACE_METRICS_PUBLIC) to let anyone who can reach it {naming.public_means}, "
                           "or bind to 127.0.0.1")


def bearer_ok(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "").encode()
    return hmac.compare_digest(given, f"Bearer {token}".encode())


class LoopEndpoint:
    """`app` on a socket bound now; `await start()` serves it on the running loop."""

    def __init__(self, address: str, app: web.Application, token: str | None, public: bool,
                 naming: Naming) -> None:
        host, port = host_port(address, naming)
        check_bind(address, token, public, naming)
        try:
            self.sock = socket.create_server((host, port), family=_family(host), backlog=BACKLOG,
                                             reuse_port=False)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise naming.error(f"cannot serve {naming.what} on {address}: {reason.lower()}") from None
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://{address.rpartition(':')[0]}:{self.port}/"
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self.started = False

    async def start(self) -> None:
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            await self.runner.cleanup()
        self.close()

    def close(self) -> None:
        """Frees the socket of an endpoint that never started (or has stopped)."""
        self.sock.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def text(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain", headers=headers)
