"""`engine serve DIR`: run every graph in DIR until SIGTERM/SIGINT, reloading as DIR changes."""

import asyncio
import logging
import signal
import sys
from pathlib import Path

from adapters.cli.exit_codes import EXIT_OK, EXIT_USAGE
from adapters.cli.registry import registry_for
from adapters.control.auth import ControlSecurityError
from adapters.control.server import ControlPlane
from adapters.durable import durable_factory
from adapters.serve.host import Host
from adapters.serve.logs import configure
from adapters.serve.server import Server
from adapters.settings import Settings, SettingsError, load_settings

LOG = logging.getLogger("headrace")


async def _serve(directory: Path, settings: Settings) -> int:
    durable = durable_factory(settings.state_dir, settings.durable_max_mb)
    host = Host(registry_for(settings), settings.drain_timeout_s, durable=durable)
    server = Server(directory, host, settings.watch_debounce_ms, settings.rescan_interval_s)
    token = settings.control_token.get_secret_value() if settings.control_token is not None else None
    plane = ControlPlane(settings.control_address, token, settings.control_tls_cert, settings.control_tls_key,
                         settings.control_client_ca, settings.audit_log, server, host, settings.drain_timeout_s)
    await plane.start()
    LOG.info(f"control plane on {settings.control_address}")
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Future[None]] = set()  # held, so the event loop cannot drop them unfinished

    def stop() -> None:
        task = asyncio.ensure_future(plane.not_serving())  # health says NOT_SERVING while draining
        pending.add(task)
        task.add_done_callback(pending.discard)
        server.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await server.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await plane.stop()


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
    configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(_serve(path, settings))
    except ControlSecurityError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
