"""What `engine diagnostics collect` asks a running `engine serve` through its control plane:
every graph's summary, state, node counters and edge depths (`engine ctl status`), each
running graph's plan (secret parameters masked by the engine), the log lines the engine kept
in memory and its recent engine events (GetLogs).

Each answer becomes one file of the bundle. A control plane that cannot be reached, or that
refuses (a wrong token), is said so in `control/error.txt`, and the rest of the bundle is
still written. Only the collect command imports this module: it loads grpc.
"""

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from adapters.cli import ctl_format as fmt
from adapters.cli.ctl_client import Connection
from adapters.cli.ctl_common import Refusal
from adapters.cli.exit_codes import EXIT_UNREACHABLE

T = TypeVar("T")


@dataclass
class Remote:
    """The files the control plane's answers make (path in the bundle -> JSON value or text)."""

    address: str = ""
    reachable: bool = False
    error: str = ""  # why nothing, or not everything, came from the control plane
    # `.jsonl`: a list of values, one line each; `.txt`: text; else one JSON value
    files: dict[str, object] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)  # one line per answer that is missing


class _Unreachable(Exception):
    pass


def collect(args: argparse.Namespace, lines: int) -> Remote:
    try:
        connection = Connection.from_args(args)
    except Refusal as refusal:
        return Remote(error=refusal.message)
    out = Remote(address=connection.address)
    with connection, contextlib.suppress(_Unreachable):  # `out.error` says why
        _gather(connection, out, lines)
    return out


def _gather(c: Connection, out: Remote, lines: int) -> None:
    def ask(what: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Refusal as refusal:
            if refusal.code == EXIT_UNREACHABLE or not out.reachable:
                out.error = refusal.message  # the first call failed: nothing else will work either
                raise _Unreachable from None
            out.gaps.append(f"{what}: {refusal.message}")
            return None

    pb = c.pb
    listed = ask("graphs", lambda: c.call(c.stub.ListGraphs, pb.ListGraphsRequest()))
    out.reachable = True
    assert listed is not None
    status = fmt.to_dict(listed)
    health = ask("health", c.health)
    out.files["control/status.json"] = {"address": c.address, "health": health, **status}
    for summary in listed.graphs:
        if summary.state == "rejected":
            continue  # nothing runs for the file: its problems are in the summary
        name = summary.file
        graph = ask(f"graph {name}", partial(c.call, c.stub.GetGraph, pb.GetGraphRequest(graph=name)))
        if graph is not None:
            out.files[f"control/graphs/{name}.json"] = fmt.to_dict(graph)
        plan = ask(f"plan {name}", partial(c.call, c.stub.GetPlan, pb.GetPlanRequest(graph=name)))
        if plan is not None:
            out.files[f"control/plans/{name}.json"] = {
                "graph": plan.graph, "file": plan.file, "plan_hash": plan.plan_hash, "plan": json.loads(plan.json)}
    logs = ask("logs", lambda: c.call(c.stub.GetLogs, pb.GetLogsRequest(limit=lines)))
    if logs is not None:
        out.files["control/logs.txt"] = _log_text(logs)
        out.files["control/events.jsonl"] = [fmt.to_dict(e) for e in logs.events]


def _log_text(logs: Any) -> str:
    head = [f"# the newest {len(logs.lines)} log lines `engine serve` kept in memory (it keeps {logs.capacity})"]
    if logs.discarded:
        head.append(f"# {logs.discarded} older lines are no longer kept")
    body = [f"{fmt.moment(line.time, millis=True)} {line.text}" for line in logs.lines]
    return "\n".join(head + body) + "\n"


def unreachable_note(out: Remote) -> str:
    """`control/error.txt`: why the bundle has nothing (or not everything) from the control plane."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [f"at {when}:"]
    if not out.reachable:
        lines.append(f"nothing was collected from the control plane: {out.error}")
    lines += [f"missing: {gap}" for gap in out.gaps]
    return "\n".join(lines) + "\n"
