"""`engine run FILE`: load one graph, run it to the end, report."""

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from adapters.cli.one_graph import EXIT_OK, EXIT_PROBLEMS, load_plan
from adapters.cli.progress import show_progress
from adapters.cli.registry import default_registry
from adapters.durable import DurableFactory, durable_factory, has_durable_edges
from engine.node import NodeFailure
from engine.runtime import Runtime



class _StderrLines(logging.Handler):
    """`engine: warning: ...` on whatever `sys.stderr` is at the time of the message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"engine: warning: {record.getMessage()}\n")
        except (OSError, ValueError):
            pass  # standard error is gone; the counters still have the errors


def _log_to_stderr() -> None:
    logger = logging.getLogger("headrace")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines())
    logger.setLevel(logging.WARNING)
    logger.propagate = False


class _Signals:
    """First SIGINT/SIGTERM: stop the sources and drain. A second one: stop at once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.received = 0

    def __call__(self) -> None:
        self.received += 1
        if self.received == 1:
            self.runtime.request_stop()
        else:
            self.runtime.fail("interrupted twice: stopped without draining the edges")


async def _run(runtime: Runtime) -> bool:
    loop = asyncio.get_running_loop()
    handler = _Signals(runtime)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler)
    progress = asyncio.ensure_future(show_progress(runtime)) if sys.stderr.isatty() else None
    try:
        return await runtime.run()
    finally:
        if progress is not None:
            progress.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _write_stats(path: str, runtime: Runtime) -> str:
    try:
        Path(path).write_text(json.dumps(runtime.stats(), indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        return f"cannot write the stats file {path}: {exc.strerror or exc}"
    return ""


def _durable() -> DurableFactory:
    from adapters.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise ValueError(str(exc)) from None
    return durable_factory(settings.state_dir, settings.durable_max_mb)


def cmd_run(file: str, stats_file: str | None) -> int:
    registry = default_registry()
    plan, code = load_plan(file, registry)
    if plan is None:
        return code
    _log_to_stderr()
    try:
        durable = _durable() if has_durable_edges(plan) else None
        runtime = Runtime(plan, registry, durable=durable)
    except ValueError as exc:  # the settings (pydantic loads only for graphs with durable edges)
        for line in str(exc).splitlines():
            print(f"engine: error: {line}", file=sys.stderr)
        return EXIT_PROBLEMS
    except NodeFailure as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        ok = asyncio.run(_run(runtime))
    except Exception as exc:  # a bug in a node: still one line, and the counters so far
        runtime.fail(f"internal error: {type(exc).__name__}: {exc} (please report this with the graph file)")
        ok = False
    problem = _write_stats(stats_file, runtime) if stats_file else ""
    if not ok:
        print(f"engine: error: {runtime.failure}", file=sys.stderr)
        return EXIT_PROBLEMS
    if problem:
        print(f"engine: error: {problem}", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK
