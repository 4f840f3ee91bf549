"""The live web inspector of `engine serve` (docs/inspector.md): a read-only page of every
graph, its picture with live node counters and edge fill bars, its state, last reload and
the recent failures.

Like `/metrics` it is served on the engine's event loop (adapters/observe/web.py): a request
reads the graphs directly, between two batches (adapters/observe/inspector_view.py). It follows
the same token rule: with a `control_token` the page and its API need it (as a bearer token, or
`?token=`, since a browser cannot send a header when it opens a page) unless
`metrics_public`; without a token it binds to loopback only, unless `metrics_public`.
The page's script and stylesheet are the same public files for everyone and need no token;
everything that shows the engine's state does. It works without internet access: the page
is three files shipped in the package, the picture is SVG drawn here.
"""

import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aiohttp import web

from adapters.control.auth import is_loopback
from adapters.observe import MetricsError
from adapters.observe.inspector_svg import render
from adapters.observe.inspector_view import FailureLog, Reading, reading_json, take
from adapters.observe.web import LoopEndpoint, Naming, bearer_ok
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
PICTURES_KEPT: Final = 64


class InspectorError(MetricsError):
    """The inspector cannot start as configured; the message is one line naming the fix."""


NAMING: Final = Naming("the inspector", "inspector_address", "127.0.0.1:9465", "see the graphs", InspectorError)


class Inspector:
    """The data behind the page: readings as JSON, and each graph's picture (drawn once per plan)."""

    def __init__(self, read: Callable[[], Reading], registry: SpecRegistry) -> None:
        self.read = read
        self.registry = registry
        self.types = frozenset(spec.name for spec in registry.specs())
        self.pictures: dict[str, bytes] = {}  # plan hash -> SVG

    def graphs_json(self) -> bytes:
        return json.dumps(reading_json(self.read(), self.types), ensure_ascii=False).encode()

    def picture(self, file: str) -> tuple[str, bytes] | None:
        """(plan hash, SVG) of the graph running from `file`; None when none does."""
        found = next((g for g in self.read().graphs if g.file == file and g.plan is not None), None)
        if found is None or found.plan is None:
            return None
        svg = self.pictures.get(found.plan_hash)
        if svg is None:
            svg = render(topology(found.plan, self.registry)).encode()
            if len(self.pictures) >= PICTURES_KEPT:
                self.pictures.clear()
            self.pictures[found.plan_hash] = svg
        return found.plan_hash, svg


class InspectorEndpoint(LoopEndpoint):
    def __init__(self, address: str, inspector: Inspector, token: str | None = None, public: bool = False) -> None:
        app = _app(inspector, None if public else token, loopback_only=token is None and not public)
        super().__init__(address, app, token, public, NAMING)


def serve_inspector(address: str, host: "Host", token: str | None = None, public: bool = False) -> InspectorEndpoint:
    """The inspector of `host`, bound (not started): a bad address or a port in use raises
    InspectorError before anything else starts. Start it on the loop the graphs run on."""
    failures = FailureLog(host)
    endpoint = InspectorEndpoint(address, Inspector(lambda: take(host, failures), host.registry), token, public)
    host.listeners.append(failures)
    return endpoint


def _authorized(request: web.Request, expected: str) -> bool:
    """The bearer token of `/metrics`, or `?token=` (a browser opening the page sends no header)."""
    in_query = hmac.compare_digest(request.query.get("token", "").encode(), expected.encode())
    return bearer_ok(request, expected) or in_query


def _send(status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers={**HEADERS, "Content-Type": kind, **(headers or {})})


def _app(inspector: Inspector, token: str | None, loopback_only: bool) -> web.Application:
    page = (STATIC / "index.html").read_bytes()
    assets = {path: ((STATIC / name).read_bytes(), kind) for path, (name, kind) in ASSETS.items()}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in assets:
            return _send(200, *assets[path])
        if path not in (PAGE, "/index.html", API_GRAPHS, API_PICTURE):
            return _send(404, b"not found: the inspector is at /\n", "text/plain")
        if loopback_only and not is_loopback(request.headers.get("Host", "")):
            # Bound to loopback without a token: a page of another site must not read it
            # through a DNS name that points here (DNS rebinding).
            return _send(403, b"forbidden: open the inspector as http://127.0.0.1:PORT/ or localhost\n",
                         "text/plain")
        if token is not None and not _authorized(request, token):
            return _send(401, b"unauthorized: open the inspector as /?token=TOKEN (the control token), "
                         b"or send `Authorization: Bearer TOKEN`\n", "text/plain", {"WWW-Authenticate": "Bearer"})
        if path in (PAGE, "/index.html"):
            return _send(200, page, "text/html; charset=utf-8")
        try:
            return _api(path, request.query.get("file", ""))
        except Exception as exc:  # a reading failed: say so, and keep serving the next one
            return _send(503, json.dumps({"error": f"engine unavailable: {type(exc).__name__}"}).encode(),
                         "application/json")

    def _api(path: str, file: str) -> web.Response:
        if path == API_GRAPHS:
            return _send(200, inspector.graphs_json(), "application/json")
        found = inspector.picture(file)
        if found is None:
            return _send(404, b"no graph runs from that file\n", "text/plain")
        plan_hash, svg = found
        return _send(200, svg, "image/svg+xml", {"X-Plan-Hash": plan_hash})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return app
