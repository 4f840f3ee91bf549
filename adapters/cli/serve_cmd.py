"""`engine serve DIR`: run every graph in DIR until SIGTERM/SIGINT, reloading as DIR changes."""

import asyncio
import logging
import signal
import sys
from pathlib import Path

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.registry import registry_for
from adapters.control.auth import ControlSecurityError
from adapters.control.server import ControlPlane
from adapters.observe import MetricsError
from adapters.observe.endpoint import MetricsEndpoint
from adapters.observe.inspector import InspectorEndpoint, serve_inspector
from adapters.ray.executor import serve_stages
from adapters.serve.host import Host
from adapters.serve.logs import RecentLines, configure
from adapters.serve.server import Server
from adapters.settings import Settings, SettingsError, load_settings
from adapters.storage.durable import check_state, durable_factory
from adapters.trust.gate import TrustGate
from adapters.trust.keys import TrustError
from engine.node import NodeFailure

LOG = logging.getLogger("headrace")
INTERRUPTED = "interrupted twice: stopped without draining"


class _Signals:
    """First SIGINT/SIGTERM: health says NOT_SERVING, the sources stop and every graph
    drains (for at most `drain_timeout_s`). A second one: every graph stops at once."""

    def __init__(self, server: Server, host: Host, plane: ControlPlane) -> None:
        self.server = server
        self.host = host
        self.plane = plane
        self.received = 0
        self.dropped = 0  # events in memory edges a second signal dropped
        self.pending: set[asyncio.Future[None]] = set()  # held, so the event loop cannot drop them unfinished

    def __call__(self) -> None:
        self.received += 1
        if self.received == 1:
            task = asyncio.ensure_future(self.plane.not_serving())
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            self.server.request_stop()
        elif self.received == 2:
            self.dropped = self.host.interrupt(INTERRUPTED)


def _metrics(settings: Settings, host: Host, token: str | None) -> "MetricsEndpoint | None":
    """The /metrics endpoint, bound before anything else starts (a bad address or a port in
    use stops serve at once); it reads the counters on this loop, between batches."""
    if not settings.metrics_address:
        return None
    from adapters.observe.metrics import metrics_registry
    from adapters.observe.snapshot import serve_snapshot

    return MetricsEndpoint(settings.metrics_address, metrics_registry(lambda: serve_snapshot(host)), token,
                           settings.metrics_public)


def _inspector(settings: Settings, host: Host, token: str | None) -> InspectorEndpoint | None:
    """The web inspector, bound before anything else starts, like /metrics (and with its
    token rule); it reads the graphs on this loop, between batches."""
    if not settings.inspector_address:
        return None
    return serve_inspector(settings.inspector_address, host, token, settings.metrics_public)


async def _serve(directory: Path, settings: Settings, recent: RecentLines | None = None) -> int:
    durable = durable_factory(settings.state_dir, settings.durable_max_mb,
                              key_file=settings.state_encryption_key_file)
    host = Host(registry_for(settings), settings.drain_timeout_s, durable=durable, stages=serve_stages(settings))
    server = Server(directory, host, settings.watch_debounce_ms, settings.rescan_interval_s)
    if settings.trusted_keys:  # keys are read before anything binds: a bad one stops serve at once
        server.gate = TrustGate.from_paths(directory, settings.trusted_keys, host)
    token = settings.control_token.get_secret_value() if settings.control_token is not None else None
    metrics = _metrics(settings, host, token)
    try:
        inspector = _inspector(settings, host, token)
    except MetricsError:
        if metrics is not None:
            metrics.close()
        raise
    plane = ControlPlane(settings.control_address, token, settings.control_tls_cert, settings.control_tls_key,
                         settings.control_client_ca, settings.audit_log, server, host, settings.drain_timeout_s,
                         recent=recent)
    if server.gate is not None:
        server.gate.audit = plane.audit  # refused reloads are audited like refused calls
    await plane.start()
    LOG.info(f"control plane on {settings.control_address}")
    if metrics is not None:
        await metrics.start()
        LOG.info(f"metrics on http://{settings.metrics_address}/metrics")
    if inspector is not None:
        await inspector.start()
        LOG.info(f"inspector on {inspector.url}")
    loop = asyncio.get_running_loop()
    signals = _Signals(server, host, plane)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals)
    try:
        await server.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await plane.stop(0.0 if host.interrupted else 1.0)
        if metrics is not None:
            await metrics.stop()
        if inspector is not None:
            await inspector.stop()
    if host.interrupted:
        lost = f" ({signals.dropped} events in memory edges dropped)" if signals.dropped else ""
        print(f"engine: error: {INTERRUPTED}{lost}", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_serve(directory: str, config: str | None) -> int:
    try:
        settings = load_settings(Path(config) if config else None)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"engine: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    path = Path(directory)
    if not path.is_dir():
        print(f"engine: error: {directory} is not a directory (serve takes the directory of graph files)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        check_state(settings.state_dir, settings.state_encryption_key_file)  # a key that does not fit
    except NodeFailure as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    recent = configure(settings.log_level, settings.log_format)
    try:
        return asyncio.run(_serve(path, settings, recent))
    except (ControlSecurityError, MetricsError, TrustError) as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
