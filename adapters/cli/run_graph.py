"""`engine run FILE`: load one graph, run it to the end, report."""

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.cli.executor_choice import stage_executor
from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.one_graph import load_plan
from adapters.cli.progress import show_progress
from adapters.cli.registry import default_registry, registry_for, registry_without_settings
from adapters.observe import MetricsError
from adapters.ray.cluster import ClusterError
from adapters.serve.logs import MaskSecrets
from adapters.storage.durable import DurableFactory, durable_factory, has_durable_edges
from engine.node import NodeFailure
from engine.plan import GraphPlan
from engine.runtime import Runtime
from engine.spec import SpecRegistry

if TYPE_CHECKING:
    from adapters.observe.endpoint import MetricsEndpoint


class _StderrLines(logging.Handler):
    """`engine: warning: ...` on whatever `sys.stderr` is at the time of the message."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError, ValueError):  # standard error is gone; the counters still count
            sys.stderr.write(f"engine: warning: {record.getMessage()}\n")


def log_to_stderr() -> None:
    logger = logging.getLogger("headrace")
    # The command owns the engine's log: one line per warning, whatever configured it before
    # in this process (serve's handlers, in tests that run both in one interpreter).
    for handler in list(logger.handlers):
        if not isinstance(handler, _StderrLines):
            logger.removeHandler(handler)
    if not logger.handlers:
        handler = _StderrLines()
        handler.addFilter(MaskSecrets())
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


class _Signals:
    """First SIGINT/SIGTERM: stop the sources and drain. A second one: stop at once (exit 1;
    durable edges keep what they hold for the next run)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.received = 0

    def __call__(self) -> None:
        self.received += 1
        if self.received == 1:
            self.runtime.request_stop()
        elif self.received == 2:
            held = self.runtime.held()
            lost = f" ({held} events in memory edges dropped)" if held else ""
            self.runtime.fail(f"interrupted twice: stopped without draining{lost}")


class _FinalScrape:
    """After the graph ends, `engine run` goes on serving its final counters until a scrape
    has read them (so the last scrape equals the stats file), for at most `linger_s`."""

    def __init__(self, linger_s: float) -> None:
        self.linger_s = linger_s
        self.ended = False
        self.read = asyncio.Event()

    def taken(self) -> None:
        if self.ended:
            self.read.set()

    async def wait(self) -> None:
        self.ended = True
        if self.linger_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.read.wait(), self.linger_s)


def _metrics(runtime: Runtime, file: str, address: str, config: str | None,
             final: _FinalScrape) -> "MetricsEndpoint":
    """`--metrics-address`: the endpoint of `engine serve`, for this one graph; the token
    rule is serve's (control_token and metrics_public from the settings)."""
    from adapters.observe.endpoint import MetricsEndpoint
    from adapters.observe.metrics import metrics_registry
    from adapters.observe.snapshot import Snapshot, graph_view, stamped
    from adapters.settings import SettingsError, load_settings

    try:
        settings = load_settings(Path(config) if config else None)
    except SettingsError as exc:
        raise MetricsError(str(exc).replace("\n", "; ")) from None
    token = settings.control_token.get_secret_value() if settings.control_token is not None else None

    def state() -> str:
        return "failed" if runtime.failure else "running" if runtime.running else "finished"

    def take() -> Snapshot:
        snapshot = stamped([graph_view(runtime.plan.name, file, state(), runtime)])
        final.taken()
        return snapshot
    return MetricsEndpoint(address, metrics_registry(take), token, settings.metrics_public)


async def _run(runtime: Runtime, metrics: Callable[[_FinalScrape], "MetricsEndpoint"] | None = None,
               linger_s: float = 0.0) -> bool:
    final = _FinalScrape(linger_s)
    endpoint = metrics(final) if metrics is not None else None  # bound before the graph starts
    if endpoint is None:
        return await _run_graph(runtime)
    try:
        await endpoint.start()
        ok = await _run_graph(runtime)
        await final.wait()
        return ok
    finally:
        await endpoint.stop()


async def _run_graph(runtime: Runtime) -> bool:
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


def _configured(plan: GraphPlan, registry: SpecRegistry,
                config: str | None) -> tuple[SpecRegistry, DurableFactory | None]:
    """The registry and durable storage to run `plan` with, from the settings, read once here
    and only when something needs them (pydantic costs start-up time): `--config`, durable
    edges (the state directory) or a node family's nodes (the GPU device)."""
    durable = has_durable_edges(plan)
    if not (config or durable or registry.families_in(plan)):
        return registry, None
    from adapters.settings import SettingsError, load_settings

    try:
        settings = load_settings(Path(config) if config else None)
    except SettingsError as exc:
        if config or durable:
            raise ValueError(str(exc)) from None
        return registry_without_settings(str(exc)), None  # the segment that needed them says so
    factory = durable_factory(settings.state_dir, settings.durable_max_mb,
                              key_file=settings.state_encryption_key_file) if durable else None
    return registry_for(settings), factory


def cmd_run(file: str, stats_file: str | None, config: str | None = None, metrics_address: str | None = None,
            metrics_linger_s: float = 0.0, executor: str | None = None, ray_address: str | None = None) -> int:
    registry = default_registry()  # validating needs no settings
    plan, code = load_plan(file, registry)
    if plan is None:
        return code
    log_to_stderr()
    try:
        registry, durable = _configured(plan, registry, config)
        stages = stage_executor(plan, executor, ray_address, config)
        runtime = Runtime(plan, registry, durable=durable, stages=stages)
    except ClusterError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except ValueError as exc:  # the settings
        for line in str(exc).splitlines():
            print(f"engine: error: {line}", file=sys.stderr)
        return EXIT_PROBLEMS
    except NodeFailure as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    metrics = (lambda final: _metrics(runtime, file, metrics_address, config, final)) if metrics_address else None
    try:
        ok = asyncio.run(_run(runtime, metrics, metrics_linger_s))
    except MetricsError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
