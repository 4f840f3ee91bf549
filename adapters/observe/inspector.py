"""The live web inspector of `engine serve` (docs/inspector.md): a read-only page of every
graph, its picture with live node counters and edge fill bars, its state, last reload and
the recent failures.

Like `/metrics` it runs on a thread of its own: a page load never runs on the engine's loop,
only the reading does (adapters/observe/inspector_view.py), between batches. It follows the
same token rule: with a `control_token` the page and its API need it (as a bearer token, or
`?token=`, since a browser cannot send a header when it opens a page) unless
`metrics_public`; without a token it binds to loopback only, unless `metrics_public`.
The page's script and stylesheet are the same public files for everyone and need no token;
everything that shows the engine's state does. It works without internet access: the page
is three files shipped in the package, the picture is SVG drawn here.
"""

import asyncio
import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

from adapters.control.auth import is_loopback
from adapters.observe import MetricsError
from adapters.observe.inspector_svg import render
from adapters.observe.inspector_view import FailureLog, Reading, reading_json, take
from adapters.pictures.topology import topology
from engine.spec import SpecRegistry

if TYPE_CHECKING:
    from adapters.serve.host import Host

STATIC: Final = Path(__file__).parent / "static"
PAGE: Final = "/"
API_GRAPHS: Final = "/api/graphs"
API_PICTURE: Final = "/api/picture"
ASSETS: Final = {  # path -> (file in STATIC, content type): the page's own files, public
    "/static/inspector.js": ("inspector.js", "text/javascript; charset=utf-8"),
    "/static/inspector.css": ("inspector.css", "text/css; charset=utf-8"),
}
HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a `?token=` in the address never leaves in a Referer
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
READ_TIMEOUT_S: Final = 5.0  # the longest a page waits for the engine's loop to take a reading
PICTURES_KEPT: Final = 64


class InspectorError(MetricsError):
    """The inspector cannot start as configured; the message is one line naming the fix."""


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InspectorError(f"inspector address {address!r} is not HOST:PORT (e.g. 127.0.0.1:9465)")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_inspector_bind(address: str, token: str | None, public: bool) -> None:
    if token is None and not public and not is_loopback(address):
        raise InspectorError(f"refusing to serve the inspector on {address} without a token: set control_token "
                             "(HEADRACE_CONTROL_TOKEN) so the page must be opened with it, set metrics_public = "
                             "true (HEADRACE_METRICS_PUBLIC) to let anyone who can reach it see the graphs, "
                             "or bind to 127.0.0.1")


class Inspector:
    """The data behind the page: readings as JSON, and each graph's picture (drawn once per plan)."""

    def __init__(self, read: Callable[[], Reading], registry: SpecRegistry) -> None:
        self.read = read
        self.registry = registry
        self.types = frozenset(spec.name for spec in registry.specs())
        self.pictures: dict[str, bytes] = {}  # plan hash -> SVG
        self.lock = threading.Lock()

    def graphs_json(self) -> bytes:
        return json.dumps(reading_json(self.read(), self.types), ensure_ascii=False).encode()

    def picture(self, file: str) -> tuple[str, bytes] | None:
        """(plan hash, SVG) of the graph running from `file`; None when none does."""
        found = next((g for g in self.read().graphs if g.file == file and g.plan is not None), None)
        if found is None or found.plan is None:
            return None
        with self.lock:
            svg = self.pictures.get(found.plan_hash)
        if svg is None:
            svg = render(topology(found.plan, self.registry)).encode()
            with self.lock:
                if len(self.pictures) >= PICTURES_KEPT:
                    self.pictures.clear()
                self.pictures[found.plan_hash] = svg
        return found.plan_hash, svg


def on_loop(loop: asyncio.AbstractEventLoop, host: "Host", failures: FailureLog) -> Callable[[], Reading]:
    """A reading taken on `loop` (between two of its callbacks) for a caller on another thread."""

    async def taken() -> Reading:
        return take(host, failures)

    def call() -> Reading:
        return asyncio.run_coroutine_threadsafe(taken(), loop).result(READ_TIMEOUT_S)
    return call


class InspectorEndpoint:
    def __init__(self, address: str, inspector: Inspector, token: str | None = None, public: bool = False) -> None:
        host, port = _host_port(address)
        check_inspector_bind(address, token, public)
        handler = _handler(inspector, None if public else token, loopback_only=token is None and not public)
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise InspectorError(f"cannot serve the inspector on {address}: {reason.lower()}") from None
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{address.rpartition(':')[0]}:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="inspector", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


def serve_inspector(address: str, host: "Host", loop: asyncio.AbstractEventLoop, token: str | None = None,
                    public: bool = False) -> InspectorEndpoint:
    """The inspector of `host`, bound (not started): a bad address or a port in use raises
    InspectorError before anything else starts. Run it on `loop`, the loop the graphs run on."""
    failures = FailureLog(host)
    endpoint = InspectorEndpoint(address, Inspector(on_loop(loop, host, failures), host.registry), token, public)
    host.listeners.append(failures)
    return endpoint


def _authorized(expected: str, header: str, query: dict[str, list[str]]) -> bool:
    given_header = header.encode()
    given_query = (query.get("token") or [""])[0].encode()
    bearer = hmac.compare_digest(given_header, f"Bearer {expected}".encode())
    in_query = hmac.compare_digest(given_query, expected.encode())
    return bearer or in_query


def _handler(inspector: Inspector, token: str | None, loopback_only: bool) -> type[BaseHTTPRequestHandler]:
    page = (STATIC / "index.html").read_bytes()
    assets = {path: ((STATIC / name).read_bytes(), kind) for path, (name, kind) in ASSETS.items()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path in assets:
                self._send(200, *assets[url.path])
                return
            if url.path not in (PAGE, "/index.html", API_GRAPHS, API_PICTURE):
                self._send(404, b"not found: the inspector is at /\n", "text/plain")
                return
            if loopback_only and not is_loopback(self.headers.get("Host", "")):
                # Bound to loopback without a token: a page of another site must not read it
                # through a DNS name that points here (DNS rebinding).
                self._send(403, b"forbidden: open the inspector as http://127.0.0.1:PORT/ or localhost\n",
                           "text/plain")
                return
            if token is not None and not _authorized(token, self.headers.get("Authorization", ""), query):
                self._send(401, b"unauthorized: open the inspector as /?token=TOKEN (the control token), "
                           b"or send `Authorization: Bearer TOKEN`\n", "text/plain", {"WWW-Authenticate": "Bearer"})
                return
            if url.path in (PAGE, "/index.html"):
                self._send(200, page, "text/html; charset=utf-8")
                return
            try:
                self._api(url.path, query)
            except Exception as exc:  # the engine is stopping, or its loop did not answer in time
                body = json.dumps({"error": f"engine unavailable: {type(exc).__name__}"}).encode()
                self._send(503, body, "application/json")

        def _api(self, path: str, query: dict[str, list[str]]) -> None:
            if path == API_GRAPHS:
                self._send(200, inspector.graphs_json(), "application/json")
                return
            file = (query.get("file") or [""])[0]
            found = inspector.picture(file)
            if found is None:
                self._send(404, b"no graph runs from that file\n", "text/plain")
                return
            plan_hash, svg = found
            self._send(200, svg, "image/svg+xml", {"X-Plan-Hash": plan_hash})

        def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**HEADERS, **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a page polls every second: not worth a log line each (and a `?token=` stays out of logs)

    return Handler
