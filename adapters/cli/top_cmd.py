"""`engine top`: a live view of a running `engine serve` over its control plane: every graph
with its state and plan, each node's in/out/error rates and totals, each edge's fill.

It connects as `engine ctl` does (the same --address, --token, --ca, --cert, --key, --timeout
options and variables) and polls `ListGraphs` and `GetGraph` every --interval seconds. Three
ways to show what it reads:

- stdout a terminal (and no --once, no --json): the live view, redrawn each interval and when
  the terminal is resized; keys `q` quit, `s` cycles the sort key, `g` cycles the graph shown;
  Ctrl-C quits too (exit 0). The terminal is restored however it ends.
- `--once`: one frame, then exit. It polls twice, --interval apart, so its rates are real.
- otherwise (stdout a pipe or file, or --json): a frame each interval, each one's rates over
  the interval before it, until Ctrl-C; with --json one JSON object per line.

Errors are `engine ctl`'s: one `engine: error:` line, exit 2 when the engine cannot be
reached, 1 when it refuses (a wrong token, no such --graph). Once the live view is up, a
failed poll is shown on the screen instead and retried each interval.
"""

import argparse
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any

from adapters.cli import top_view as view
from adapters.cli.ctl import _connection_options, _positive
from adapters.cli.ctl_common import Refusal
from adapters.cli.ctl_format import moment
from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS
from adapters.serve.vocabulary import REJECTED

if TYPE_CHECKING:
    from adapters.cli.ctl_client import Connection

DEFAULT_INTERVAL_S = 1.0


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    top = commands.add_parser(
        "top", help="a live view of a running `engine serve`: graphs, node rates, edge fill",
        description="A live view of a running `engine serve` over its control plane (as `engine ctl`). "
        "Keys: q quits, s cycles the sort key, g cycles the graph shown.")
    top.add_argument("--graph", metavar="NAME", help="only this graph (its name or its file name)")
    top.add_argument("--sort", choices=view.SORT_KEYS, default="name",
                     help="order of the nodes: name (default), or the largest first: in, out, errors "
                     "(totals) or rate (events a second)")
    top.add_argument("--interval", type=_positive, default=DEFAULT_INTERVAL_S, metavar="S",
                     help=f"seconds between polls, over which rates are measured (default {DEFAULT_INTERVAL_S:g})")
    top.add_argument("--once", action="store_true",
                     help="print one frame and exit (it polls twice, --interval apart, for the rates)")
    _connection_options(top, top=True)


def cmd_top(args: argparse.Namespace) -> int:
    if "grpc" not in sys.modules:  # gRPC's own log lines would only repeat the one-line errors
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from adapters.cli.ctl_client import Connection  # grpc loads only here

    try:
        connection = Connection.from_args(args)
    except Refusal as refusal:
        return refusal.report()
    with connection:
        poller = Poller(connection)
        try:
            if args.once:
                return _once(poller, args)
            if sys.stdout.isatty() and not args.json:
                return _live(poller, args)
            return _frames(poller, args)
        except Refusal as refusal:
            return refusal.report()


class Poller:
    """Reads every graph (or one) and keeps the counters of the last poll for the rates."""

    def __init__(self, connection: "Connection") -> None:
        self.c = connection
        self.names: list[str] = []  # every graph the engine knew at the last poll
        self.last: dict[str, tuple[float, view.Counters]] = {}  # file -> (when, counters)

    def poll(self, only: str | None) -> list[dict[str, Any]]:
        c = self.c
        summaries = list(c.call(c.stub.ListGraphs, c.pb.ListGraphsRequest()).graphs)
        self.names = [s.name or s.file for s in summaries]
        chosen = [s for s in summaries if only is None or only in (s.name, s.file)]
        if only is not None and not chosen:
            raise Refusal(f"no graph '{only}' in the engine at {c.address}", EXIT_PROBLEMS)
        graphs = []
        seen: dict[str, tuple[float, view.Counters]] = {}
        for summary in chosen:
            graph = self._graph(summary)
            at = time.monotonic()
            before = self.last.get(summary.file)
            graphs.append(view.graph_dict(graph, before[1] if before else None, at - before[0] if before else None))
            seen[summary.file] = (at, view.counters(graph))
        self.last = seen  # a graph not shown this time starts again without rates
        return graphs

    def _graph(self, summary: Any) -> Any:
        """The graph in full; only its summary when it has no running version (rejected) or
        went away since the list."""
        import grpc

        c = self.c
        if summary.state == REJECTED:
            return c.pb.Graph(summary=summary)
        try:
            return c.stub.GetGraph(c.pb.GetGraphRequest(graph=summary.file), timeout=c.timeout, metadata=c.metadata)
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
                return c.pb.Graph(summary=summary)
            raise c.refusal(exc, c.timeout) from None


def _out(text: str) -> None:
    print(text, flush=True)


def _show(graphs: list[dict[str, Any]], args: argparse.Namespace, indent: int | None) -> None:
    if args.json:
        _out(view.frame_json(graphs, args.sort, time.time(), indent))
    else:
        _out("\n".join(view.text_frame(graphs, args.sort)))


def _once(poller: Poller, args: argparse.Namespace) -> int:
    poller.poll(args.graph)
    time.sleep(args.interval)
    _show(poller.poll(args.graph), args, indent=2)
    return EXIT_OK


def _frames(poller: Poller, args: argparse.Namespace) -> int:
    """A frame each interval, after a first poll that only starts the rates; until Ctrl-C."""
    try:
        poller.poll(args.graph)
        due = time.monotonic()
        while True:
            due += args.interval
            time.sleep(max(0.0, due - time.monotonic()))
            graphs = poller.poll(args.graph)
            if not args.json:
                _out(f"--- {moment(time.time())}")
            _show(graphs, args, indent=None)
    except KeyboardInterrupt:
        return EXIT_OK


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _terminal(wake: int) -> Iterator[int | None]:
    """Standard input in cbreak mode (keys one at a time, not echoed; Ctrl-C still a signal)
    when it is a terminal, yielding its descriptor (None when it is not); SIGWINCH wakes the
    loop through `wake`, SIGTERM ends it like Ctrl-C. Everything is put back on the way out."""
    import termios
    import tty

    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None

    def resized(signum: int, frame: FrameType | None) -> None:
        with suppress(BlockingIOError):  # a wake-up is already waiting
            os.write(wake, b"w")

    handlers = {signal.SIGWINCH: signal.signal(signal.SIGWINCH, resized),
                signal.SIGTERM: signal.signal(signal.SIGTERM, _stop)}
    try:
        if fd is not None:
            tty.setcbreak(fd)
        yield fd
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _fit(console: Any) -> None:
    """The console's size is the terminal's now (not $COLUMNS/$LINES from when it started)."""
    with suppress(OSError):
        console.size = os.get_terminal_size(sys.stdout.fileno())


def _live(poller: Poller, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    only: str | None = args.graph
    key: str = args.sort
    graphs = poller.poll(only)  # before the screen changes: an unreachable engine is one line, exit 2
    note = ""
    console = Console(file=sys.stdout)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    try:
        with _terminal(wake_write) as keys, Live(console=console, screen=True, auto_refresh=False,
                                                  redirect_stdout=False, redirect_stderr=False) as live:
            due = time.monotonic() + args.interval
            while True:
                _fit(console)
                screen = view.live_view(graphs, address=poller.c.address, key=key, only=only, note=note,
                                        console=console)
                live.update(screen, refresh=True)
                waiting = [wake_read] + ([keys] if keys is not None else [])
                ready, _, _ = select.select(waiting, [], [], max(0.0, due - time.monotonic()))
                if wake_read in ready:
                    os.read(wake_read, 64)  # resized: draw again
                if keys is not None and keys in ready:
                    typed = os.read(keys, 64).decode(errors="replace")
                    if not typed:
                        keys = None  # standard input closed: Ctrl-C still quits
                    if "q" in typed.lower():
                        return EXIT_OK
                    for char in typed:
                        if char == "s":
                            key = view.SORT_KEYS[(view.SORT_KEYS.index(key) + 1) % len(view.SORT_KEYS)]
                        elif char == "g":
                            choices: list[str | None] = [None, *poller.names]
                            only = choices[(choices.index(only) + 1) % len(choices) if only in choices else 0]
                            due = time.monotonic()  # show it now
                if time.monotonic() >= due:
                    due = time.monotonic() + args.interval
                    try:
                        graphs, note = poller.poll(only), ""
                    except Refusal as refusal:
                        note = f"error: {refusal.message} (retrying every {args.interval:g} s)"
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        os.close(wake_read)
        os.close(wake_write)
