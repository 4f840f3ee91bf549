"""`engine serve DIR`: run every graph in DIR until SIGTERM/SIGINT, reloading as DIR changes."""

import asyncio
import signal
import sys
from pathlib import Path

from adapters.cli.one_graph import EXIT_OK, EXIT_USAGE
from adapters.cli.registry import default_registry
from adapters.serve.host import Host
from adapters.serve.logs import configure
from adapters.serve.server import Server
from adapters.settings import Settings, SettingsError, load_settings


async def _serve(directory: Path, settings: Settings) -> int:
    host = Host(default_registry(), settings.drain_timeout_s)
    server = Server(directory, host, settings.watch_debounce_ms, settings.rescan_interval_s)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_stop)
    try:
        return await server.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


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
    asyncio.run(_serve(path, settings))
    return EXIT_OK
