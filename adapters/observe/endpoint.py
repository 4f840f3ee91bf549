"""The `/metrics` HTTP endpoint, on a thread of its own: a scrape never runs on the engine's
loop (only the snapshot does, between batches) and a slow scraper never slows a graph.

It honours the control plane's security: with a `control_token`, a scrape needs it as a
bearer token unless `metrics_public`; without a token it binds to loopback only, unless
`metrics_public` says that anyone who can reach it may read the counters.
"""

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from adapters.control.auth import is_loopback
from adapters.observe import MetricsError

PATH: Final = "/metrics"


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise MetricsError(f"metrics address {address!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_metrics_bind(address: str, token: str | None, public: bool) -> None:
    if token is None and not public and not is_loopback(address):
        raise MetricsError(f"refusing to serve metrics on {address} without a token: set control_token "
                           "(HEADRACE_CONTROL_TOKEN) so scrapes must send it, set metrics_public = true "
                           "(HEADRACE_METRICS_PUBLIC) to let anyone who can reach it read the counters, "
                           "or bind to 127.0.0.1")


class MetricsEndpoint:
    def __init__(self, address: str, registry: CollectorRegistry, token: str | None = None,
                 public: bool = False) -> None:
        check_metrics_bind(address, token, public)
        host, port = _host_port(address)
        handler = _handler(registry, None if public else token)
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MetricsError(f"cannot serve metrics on {address}: {reason.lower()}") from None
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(registry: CollectorRegistry, token: str | None) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token is not None else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self._send(404, b"not found: metrics are at /metrics\n", "text/plain")
                return
            if expected is not None:
                given = self.headers.get("Authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    self._send(401, b"unauthorized: send the control token as `Authorization: Bearer TOKEN`\n",
                               "text/plain", {"WWW-Authenticate": "Bearer"})
                    return
            try:
                body = generate_latest(registry)
            except Exception as exc:  # the engine is stopping, or its loop did not answer in time
                self._send(503, f"metrics unavailable: {type(exc).__name__}\n".encode(), "text/plain")
                return
            self._send(200, body, CONTENT_TYPE_LATEST)

        def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes are not worth a log line each

    return Handler
