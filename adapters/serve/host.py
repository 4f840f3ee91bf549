"""The graphs `engine serve` runs, and a reload as a diff of plans.

A reload compares each file's new plan with the running one by plan hash; what to do is
decided in adapters/serve/decide.py (which `engine diff` shows too), and done here
(adapters/serve/vocabulary.py has the words):

- `unchanged`: same plan; the running graph is not touched (edges, counters, state survive);
- `added`: a new graph; its runtime is built and started;
- `updated`: a changed plan. Compared node by node (engine/plan_diff.py): nodes whose plan
  and whole upstream are unchanged are `kept` running with their state; the changed ones and
  everything downstream are `replaced` (drained, then built again), with the events between
  kept and replaced nodes handed over. Where that is not safe, the whole graph is swapped,
  and the result says why: the new runtime is built first (a failure keeps the old one),
  then the old one's sources stop and its edges drain into its sinks (bounded by the drain
  timeout; what is left is counted and reported), then the new one starts;
- `rejected`: the file has problems, or its nodes cannot be built; what ran keeps running;
- `removed`: the file is gone; its graph drains and stops.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from adapters.serve.decide import Current, Decision, claims, decide_file, removed_files
from adapters.serve.running import RUNNING, RunningGraph
from adapters.serve.scan import Snapshot
from adapters.serve.vocabulary import ADDED, REJECTED, REMOVED, UNCHANGED, UPDATED, nodes_text
from adapters.storage.durable import DurableFactory
from engine.node import NodeFailure
from engine.plan import GraphPlan
from engine.plan_diff import NodeChanges
from engine.runtime import Runtime, StageFactory
from engine.spec import SpecRegistry

LOG: Final = logging.getLogger("headrace.reload")

__all__ = ["ADDED", "REJECTED", "REMOVED", "UNCHANGED", "UPDATED", "GraphStatus", "Host", "ReloadResult"]


@dataclass
class ReloadResult:
    file: str
    graph: str
    result: str
    plan_hash: str = ""
    problems: list[str] = field(default_factory=list)
    dropped: int = 0  # events a timed-out drain left behind
    nodes: NodeChanges | None = None  # updated only: what happened to each node

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"file": self.file, "graph": self.graph, "result": self.result,
                                  "plan_hash": self.plan_hash}
        if self.problems:
            out["problems"] = self.problems
        if self.dropped:
            out["dropped"] = self.dropped
        if self.nodes is not None:
            out["nodes"] = self.nodes.to_dict()
        return out

    def detail(self) -> str:
        """The one-line summary WatchEvents and the log carry."""
        text = f"{self.file}: {self.result}"
        if self.nodes is not None:
            text += f" ({nodes_text(self.nodes.to_dict(), self.nodes.whole_swap)})"
        return text


@dataclass
class GraphStatus:
    """What the control plane shows per graph file."""

    file: str
    graph: str = ""
    state: str = ""  # running, finished, failed, stopped; "" when nothing runs for the file
    plan_hash: str = ""
    last_result: str = ""
    last_reload_at: float = 0.0
    problems: list[str] = field(default_factory=list)
    last_nodes: NodeChanges | None = None  # what the last update did to each node


class Host:
    def __init__(self, registry: SpecRegistry, drain_timeout_s: float,
                 env: Mapping[str, str] | None = None, durable: DurableFactory | None = None,
                 stages: StageFactory | None = None) -> None:
        self.registry = registry
        self.durable = durable  # builds durable edges (None: graphs with one are rejected)
        self.stages = stages  # runs partitioned stages' instances (None: in this process)
        self.drain_timeout_s = drain_timeout_s
        self.env = env
        self.graphs: dict[str, RunningGraph] = {}  # by file name
        self.status: dict[str, GraphStatus] = {}
        self.reloads = 0
        self.reload_counts: dict[tuple[str, str], int] = {}  # (graph, result) -> how many, for /metrics
        self.interrupted = ""  # why every graph stops at once (a second SIGINT/SIGTERM)
        # Called with (kind, file, graph, detail, record) for reloads, state changes and
        # failures: the control plane's WatchEvents.
        self.listeners: list[Callable[[str, str, str, str, dict[str, object]], None]] = []

    def publish(self, kind: str, file: str, graph: str, detail: str, record: dict[str, object]) -> None:
        for listener in list(self.listeners):
            listener(kind, file, graph, detail, record)

    def _failed(self, running: RunningGraph) -> None:
        self.publish("error", running.file, running.name, f"graph '{running.name}' failed: {running.reason}",
                     {"file": running.file, "graph": running.name, "failure": running.reason})

    def statuses(self) -> list[GraphStatus]:
        for name, status in self.status.items():
            running = self.graphs.get(name)
            status.state = running.state if running is not None else ""
        return [self.status[n] for n in sorted(self.status)]

    async def apply(self, snapshot: Snapshot, restart_stopped: bool = False) -> list[ReloadResult]:
        self.reloads += 1
        results: list[ReloadResult] = []
        claimed = claims({f: g.name for f, g in self.graphs.items()}, snapshot)
        for name in sorted(snapshot):
            # Decided file by file, just before acting: an earlier file's drain takes time.
            decision = decide_file(name, snapshot[name], self._current(name), claimed, self.registry,
                                   self.env, restart_stopped)
            results.append(await self._act(decision))
        for name in removed_files(self.graphs, snapshot):
            running = self.graphs.pop(name)
            dropped = await running.stop(self.drain_timeout_s)
            results.append(ReloadResult(name, running.name, REMOVED, running.plan_hash, dropped=dropped))
            self.status.pop(name, None)
        for result in results:
            self._record(result)
        return results

    def _current(self, name: str) -> Current | None:
        running = self.graphs.get(name)
        if running is None:
            return None
        runtime = running.runtime
        return Current(running.plan, running.plan_hash, running.state, runtime.running_chains,
                       runtime.swap_blocker() if running.state == RUNNING else "")

    async def _act(self, decision: Decision) -> ReloadResult:
        """Carry out what adapters/serve/decide.py decided for one file."""
        name, plan = decision.file, decision.plan
        if decision.result in (REJECTED, UNCHANGED) or plan is None:
            return ReloadResult(name, decision.graph, decision.result, decision.plan_hash,
                                problems=list(decision.problems))
        running = self.graphs.get(name)
        changes = decision.nodes
        if decision.in_place and running is not None and changes is not None:
            return await self._replace_nodes(name, running, plan, changes)
        try:
            # Built before the old one is touched.
            runtime = Runtime(plan, self.registry, durable=self.durable, stages=self.stages)
        except NodeFailure as exc:
            return ReloadResult(name, plan.name, REJECTED, decision.plan_hash, problems=[str(exc)])
        dropped = await running.stop(self.drain_timeout_s) if running is not None else 0
        replacement = RunningGraph(name, plan, runtime, self._failed)
        self.graphs[name] = replacement
        if self.interrupted:
            runtime.fail(self.interrupted)  # it starts only to close at once
        replacement.start()
        if running is None:
            return ReloadResult(name, plan.name, ADDED, decision.plan_hash)
        return ReloadResult(name, plan.name, UPDATED, decision.plan_hash, dropped=dropped, nodes=changes)

    async def _replace_nodes(self, name: str, running: RunningGraph, plan: GraphPlan,
                             changes: NodeChanges) -> ReloadResult:
        """A partial reload: the kept nodes go on running in the same runtime."""
        try:
            dropped = await running.runtime.replace_nodes(plan, changes, self.drain_timeout_s)
        except NodeFailure as exc:
            return ReloadResult(name, plan.name, REJECTED, plan.content_hash(), problems=[str(exc)])
        running.replaced()
        return ReloadResult(name, plan.name, UPDATED, running.plan_hash, dropped=dropped, nodes=changes)

    def _record(self, result: ReloadResult) -> None:
        key = (result.graph or result.file, result.result)
        self.reload_counts[key] = self.reload_counts.get(key, 0) + 1
        if result.result == REMOVED:
            LOG.info("reload", extra={"reload": result.to_dict()})
            self.publish("reload", result.file, result.graph, result.detail(), result.to_dict())
            return
        status = self.status.setdefault(result.file, GraphStatus(result.file))
        status.graph = result.graph or status.graph
        status.last_result = result.result
        status.last_reload_at = time.time()
        status.problems = result.problems
        if result.result in (ADDED, UPDATED):
            status.last_nodes = result.nodes
        running = self.graphs.get(result.file)
        status.plan_hash = running.plan_hash if running is not None else ""
        level = logging.WARNING if result.result == REJECTED else logging.INFO
        LOG.log(level, "reload", extra={"reload": result.to_dict()})
        self.publish("reload", result.file, result.graph, result.detail(), result.to_dict())

    def report(self, results: list[ReloadResult]) -> None:
        """A reload decided before `apply` (serve's signature check, adapters/trust/gate.py):
        counted, recorded, logged and published as `apply`'s own results are."""
        self.reloads += 1
        for result in results:
            self._record(result)

    def interrupt(self, reason: str) -> int:
        """Stop every graph at once, without draining (a second SIGINT/SIGTERM); a graph a
        reload starts from now on stops too. What durable edges hold stays for the next
        start. Returns the events dropped from memory."""
        self.interrupted = reason
        dropped = 0
        for running in self.graphs.values():
            if running.runtime.running and not running.runtime.failure:
                dropped += running.runtime.held()
            running.runtime.fail(reason)
        return dropped

    async def stop_all(self) -> int:
        """Drain every graph at once (SIGTERM); returns the events left behind."""
        graphs = list(self.graphs.values())
        held = await asyncio.gather(*(g.stop(self.drain_timeout_s) for g in graphs))
        return sum(held)
