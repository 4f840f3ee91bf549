"""`engine run FILE`: load one graph, run it to the end, report."""

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from adapters.cli.progress import show_progress
from adapters.cli.registry import default_registry
from engine.node import NodeFailure
from engine.runtime import Runtime
from loader.api import load_file
from loader.problems import has_errors
from loader.report import render_text

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


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


def cmd_run(file: str, stats_file: str | None) -> int:
    path = Path(file)
    if not path.is_file():
        print(f"engine: error: no such file: {file}", file=sys.stderr)
        return EXIT_USAGE
    registry = default_registry()
    result = load_file(path, registry)
    if result.problems:
        sys.stderr.write(render_text(result.problems, {result.file: result.text}))
    if result.plan is None or has_errors(result.problems):
        return EXIT_USAGE if any(p.code == "HR001" for p in result.problems) else EXIT_FAILED
    _log_to_stderr()
    try:
        runtime = Runtime(result.plan, registry)
    except NodeFailure as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        ok = asyncio.run(_run(runtime))
    except Exception as exc:  # a bug in a node: still one line, and the counters so far
        runtime.fail(f"internal error: {type(exc).__name__}: {exc} (please report this with the graph file)")
        ok = False
    problem = _write_stats(stats_file, runtime) if stats_file else ""
    if not ok:
        print(f"engine: error: {runtime.failure}", file=sys.stderr)
        return EXIT_FAILED
    if problem:
        print(f"engine: error: {problem}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
