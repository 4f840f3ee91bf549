"""`engine ctl`: the operator's client of the control plane `engine serve` answers.

One synchronous gRPC channel per command. Errors become one `engine: error:` line on
standard error (plus the problem lines the server sent) and an exit code: 1 when the server
refused (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION, UNAUTHENTICATED, ...), 2 when it
cannot be reached or the command line is wrong. Never a traceback.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.cli import ctl_format as fmt
from adapters.cli.ctl_common import ADDRESS_VARIABLE, DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, TOKEN_VARIABLE, Refusal
from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE

if TYPE_CHECKING:
    from adapters.cli.ctl_client import Connection

MAX_LIMIT = 2**32 - 1  # TapRequest.limit is a uint32
ENGINE_SAVE_QUEUE = 65536  # adapters/control/taps.py SAVE_QUEUE, without loading the engine here


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0: {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more: {text!r}")
    if int(text) > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LIMIT}: {text!r}")
    return int(text)


def connection_options(parser: argparse.ArgumentParser) -> None:
    """--address, --token, --ca, --cert, --key and --timeout as `engine ctl` takes them, for
    another command that talks to the control plane (`engine diagnostics collect`)."""
    _connection_options(parser, top=True, answers_json=False)


def _connection_options(parser: argparse.ArgumentParser, top: bool, timeout: bool = True,
                        answers_json: bool = True) -> None:
    """The options every verb takes. On `ctl` itself they have defaults; on a verb they are
    SUPPRESSed when absent, so that `engine ctl --json status` and `engine ctl status --json`
    both work and a verb never resets what was given before it."""
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--address", metavar="HOST:PORT", default=default(None),
                        help=f"the control plane (default: ${ADDRESS_VARIABLE}, else {DEFAULT_ADDRESS})")
    parser.add_argument("--token", metavar="TOKEN", default=default(None),
                        help=f"bearer token (default: ${TOKEN_VARIABLE})")
    parser.add_argument("--ca", metavar="FILE", default=default(None),
                        help="PEM CA certificate of the server; connects with TLS")
    parser.add_argument("--cert", metavar="FILE", default=default(None),
                        help="PEM client certificate, for mutual TLS (with --key)")
    parser.add_argument("--key", metavar="FILE", default=default(None),
                        help="PEM private key of the client certificate")
    if timeout:
        parser.add_argument("--timeout", metavar="S", type=_positive, default=default(DEFAULT_TIMEOUT_S),
                            help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT_S:g})")
    if answers_json:
        parser.add_argument("--json", action="store_true", default=default(False),
                            help="print the answers as JSON (streams: one object per line)")


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    ctl = commands.add_parser("ctl", help="talk to a running `engine serve`: status, pause, drain, apply, tap ...",
                              description="The client of the control plane of `engine serve` (gRPC).")
    _connection_options(ctl, top=True)
    verbs = ctl.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, text: str, timeout: bool = True) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, help=text, description=text)
        _connection_options(parser, top=False, timeout=timeout)
        return parser

    status = verb("status", "every graph, one line each; or one graph in full")
    status.add_argument("graph", nargs="?", metavar="GRAPH", help="a graph name or its file name")
    for name, text in (("pause", "pause a graph, or one node of it"), ("resume", "resume a graph or a node")):
        pause = verb(name, text)
        pause.add_argument("graph", metavar="GRAPH")
        pause.add_argument("node", nargs="?", default="", metavar="NODE")
    drain = verb("drain", "stop a graph's sources and wait until its edges are empty; exit 1 on timeout",
                 timeout=False)
    drain.add_argument("graph", metavar="GRAPH")
    drain.add_argument("--timeout", dest="drain_timeout", type=_positive, metavar="S",
                       help="how long the drain may take (default: the engine's drain_timeout_s)")
    verb("reload", "re-scan the served directory now; exit 1 if a file is rejected")
    apply = verb("apply", "write a graph file into the served directory and reload it")
    apply.add_argument("file", metavar="FILE")
    apply.add_argument("--expect", metavar="HASH", default="",
                       help="refuse unless the running plan has this hash ('none': the graph must not run)")
    apply.add_argument("--as", dest="as_name", metavar="NAME",
                       help="file name in the served directory (default: FILE's base name)")
    apply.add_argument("--signature", metavar="SIG",
                       help="FILE's signature (`engine bundle sign-file FILE --key KEY`); needed when the engine "
                       "has trusted_keys")
    remove = verb("remove", "delete a graph's file from the served directory and stop the graph")
    remove.add_argument("graph", metavar="GRAPH")
    tap = verb("tap", "print a sample of the events crossing one edge, one JSON line each, until Ctrl-C; "
               "or save every one of them to a file (--save)")
    tap.add_argument("graph", metavar="GRAPH")
    tap.add_argument("edge", metavar="EDGE", help="an edge id, e.g. priced->buys")
    tap.add_argument("--limit", type=_count, default=0, metavar="N", help="stop after N events (default: no limit)")
    sample_or_save = tap.add_mutually_exclusive_group()
    sample_or_save.add_argument("--rate", type=_positive, default=0.0, metavar="R",
                                help="at most R events a second (default: the engine's, 10)")
    sample_or_save.add_argument("--save", metavar="FILE",
                                help="write every event, none skipped, to FILE as JSON Lines (a test's "
                                "`inputs: {NODE: {file: FILE}}`) instead of printing a sample")
    verb("events", "print reloads, state changes and errors as they happen, until Ctrl-C")
    verb("health", "print the serving status; exit 0 only when SERVING")


def cmd_ctl(args: argparse.Namespace) -> int:
    if "grpc" not in sys.modules:  # gRPC's own log lines would only repeat the one-line errors
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from adapters.cli.ctl_client import Connection  # grpc loads only here

    try:
        connection = Connection.from_args(args)
    except Refusal as refusal:
        return refusal.report()
    with connection:
        try:
            return VERBS[args.verb](connection, args)
        except Refusal as refusal:
            return refusal.report()


def _out(line: str) -> None:
    print(line, flush=True)


def _note(line: str) -> None:
    print(f"engine: info: {line}", file=sys.stderr)


def _status(c: "Connection", args: argparse.Namespace) -> int:
    pb = c.pb
    if args.graph:
        graph = c.call(c.stub.GetGraph, pb.GetGraphRequest(graph=args.graph))
        _out(fmt.dumps(graph) if args.json else "\n".join(fmt.graph_detail(graph)))
    else:
        answer = c.call(c.stub.ListGraphs, pb.ListGraphsRequest())
        _out(fmt.dumps(answer) if args.json else "\n".join(fmt.graphs_table(answer.graphs)))
    return EXIT_OK


def _pause(c: "Connection", args: argparse.Namespace) -> int:
    method = c.stub.Pause if args.verb == "pause" else c.stub.Resume
    answer = c.call(method, c.pb.PauseRequest(graph=args.graph, node=args.node))
    _out(fmt.dumps(answer) if args.json else fmt.pause_line(answer))
    return EXIT_OK


def _drain(c: "Connection", args: argparse.Namespace) -> int:
    limit = args.drain_timeout
    # The engine bounds a drain by its own drain timeout when none is given, so the call then
    # waits as long as that takes; with one, the answer is due a --timeout after it.
    deadline = None if limit is None else limit + args.timeout
    answer = c.call(c.stub.Drain, c.pb.DrainRequest(graph=args.graph, timeout_s=limit or 0.0), timeout=deadline)
    _out(fmt.dumps(answer) if args.json else fmt.drain_line(answer))
    return EXIT_OK if answer.drained else EXIT_PROBLEMS


def _reload(c: "Connection", args: argparse.Namespace) -> int:
    answer = c.call(c.stub.Reload, c.pb.ReloadRequest())
    if args.json:
        _out(fmt.dumps(answer))
    else:
        for result in answer.results:
            _out("\n".join(fmt.result_lines(result)))
    return EXIT_PROBLEMS if any(r.result == "rejected" for r in answer.results) else EXIT_OK


def _apply(c: "Connection", args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        document = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(f"{args.file}: not UTF-8 text (byte {exc.start + 1})", EXIT_USAGE) from None
    except OSError as exc:
        raise Refusal(f"cannot read {args.file}: {exc.strerror or exc}", EXIT_USAGE) from None
    signature = ""
    if args.signature:
        try:
            signature = Path(args.signature).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise Refusal(f"cannot read the signature {args.signature}: {why}", EXIT_USAGE) from None
    request = c.pb.ApplyRequest(file=args.as_name or path.name, document=document, expected_plan_hash=args.expect,
                                signature=signature)
    return _one_result(args, c.call(c.stub.Apply, request))


def _remove(c: "Connection", args: argparse.Namespace) -> int:
    return _one_result(args, c.call(c.stub.Remove, c.pb.RemoveRequest(graph=args.graph)))


def _one_result(args: argparse.Namespace, answer: Any) -> int:
    _out(fmt.dumps(answer) if args.json else "\n".join(fmt.result_lines(answer.result)))
    return EXIT_PROBLEMS if answer.result.result == "rejected" else EXIT_OK


def _tap(c: "Connection", args: argparse.Namespace) -> int:
    if args.save is not None:
        return _save(c, args)
    request = c.pb.TapRequest(graph=args.graph, edge=args.edge, limit=args.limit, per_second=args.rate)

    def show(event: Any) -> None:
        _out(json.dumps(fmt.to_dict(event), ensure_ascii=False) if args.json else event.json)

    if not c.stream(c.stub.Tap, request, show, args.limit):
        _note(f"the tap ended: graph '{args.graph}' stopped, or was replaced or removed")
    return EXIT_OK


def _save(c: "Connection", args: argparse.Namespace) -> int:
    """`tap --save FILE`: every event the engine's tap sees, one line each, until the limit,
    Ctrl-C or the graph's end; then `saved N events to FILE` on standard error. Events the
    engine had to skip (this client fell behind a full queue) are reported, and exit 1."""
    file = args.save
    try:
        saved = fmt.SavedEvents(file)
    except OSError as exc:
        raise Refusal(f"cannot write {file}: {exc.strerror or exc}", EXIT_USAGE) from None
    missed = 0

    def keep(event: Any) -> None:
        nonlocal missed
        if not event.every:
            raise Refusal(f"the engine at {c.address} sent a sample, not every event: it is older than this "
                          "engine ctl and cannot --save; upgrade it, or tap without --save", EXIT_PROBLEMS)
        missed += event.missed
        try:
            saved.write(event.json)
        except OSError as exc:
            raise Refusal(f"cannot write {file}: {exc.strerror or exc} (it holds the first {saved.count} events)",
                          EXIT_USAGE) from None

    request = c.pb.TapRequest(graph=args.graph, edge=args.edge, limit=args.limit, every=True)
    try:
        finished = c.stream(c.stub.Tap, request, keep, args.limit)
    except Refusal:
        saved.close(refused=True)
        if saved.count:
            _saved(saved.count, file)
        raise
    finally:
        saved.close()  # also when interrupted outside the stream: every line in FILE is whole
    if not finished:
        _note(f"the tap ended: graph '{args.graph}' stopped, or was replaced or removed")
    _saved(saved.count, file)
    if missed:
        print(f"engine: warning: missed {missed} events: this client fell behind and the engine's tap queue was "
              f"full, so {file} has gaps (with --limit {ENGINE_SAVE_QUEUE} or less none are missed)", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def _saved(count: int, file: str) -> None:
    print(f"saved {count} events to {file}", file=sys.stderr)


def _events(c: "Connection", args: argparse.Namespace) -> int:
    def show(event: Any) -> None:
        _out(json.dumps(fmt.to_dict(event), ensure_ascii=False) if args.json else fmt.event_line(event))

    if not c.stream(c.stub.WatchEvents, c.pb.WatchEventsRequest(), show, 0):
        _note("the engine ended the event stream")
    return EXIT_OK


def _health(c: "Connection", args: argparse.Namespace) -> int:
    status = c.health()
    _out(json.dumps({"status": status}) if args.json else status)
    return EXIT_OK if status == "SERVING" else EXIT_PROBLEMS


VERBS: dict[str, Callable[["Connection", argparse.Namespace], int]] = {
    "status": _status, "pause": _pause, "resume": _pause, "drain": _drain, "reload": _reload,
    "apply": _apply, "remove": _remove, "tap": _tap, "events": _events, "health": _health,
}

