"""The `/metrics` endpoint: served on the engine's event loop (adapters/observe/web.py), so
a scrape takes its snapshot directly, between two batches, and never waits on the graphs
for the GIL. It honours the control plane's token rule (`metrics_public` to open it)."""

from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from adapters.observe.web import LoopEndpoint, Naming, bearer_ok, text

PATH: Final = "/metrics"
NAMING: Final = Naming("metrics", "metrics_address", "127.0.0.1:9464", "read the counters")


class MetricsEndpoint(LoopEndpoint):
    def __init__(self, address: str, registry: CollectorRegistry, token: str | None = None,
                 public: bool = False) -> None:
        super().__init__(address, _app(registry, None if public else token), token, public, NAMING)


def _app(registry: CollectorRegistry, token: str | None) -> web.Application:
    async def metrics(request: web.Request) -> web.StreamResponse:
        if token is not None and not bearer_ok(request, token):
            return text(401, "unauthorized: send the control token as `Authorization: Bearer TOKEN`\n",
                        {"WWW-Authenticate": "Bearer"})
        try:
            body = generate_latest(registry)
        except Exception as exc:  # a collector failed: say so, and keep serving the next scrape
            return text(503, f"metrics unavailable: {type(exc).__name__}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        return text(404, "not found: metrics are at /metrics\n")

    app = web.Application()
    app.router.add_get(PATH, metrics)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app
