"""The graphs `engine serve` runs, and a reload as a diff of plans.

A reload compares each file's new plan with the running one by plan hash:

- `unchanged`: same plan; the running graph is not touched (edges, counters, state survive);
- `applied`: new or changed; the new runtime is built first (a failure keeps the old one),
  then the old one's sources stop and its edges drain into its sinks (bounded by the drain
  timeout; what is left is counted and reported), then the new one starts;
- `rejected`: the file has problems, or its runtime cannot be built; what ran keeps running;
- `removed`: the file is gone; its graph drains and stops.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Final, Mapping

from adapters.durable import DurableFactory
from adapters.serve.running import DRAINED, STOPPED, RunningGraph
from adapters.serve.scan import Snapshot
from engine.node import NodeFailure
from engine.runtime import Runtime
from engine.spec import SpecRegistry
from loader.api import load_text
from loader.problems import ERROR

LOG: Final = logging.getLogger("headrace.reload")

APPLIED: Final = "applied"
UNCHANGED: Final = "unchanged"
REJECTED: Final = "rejected"
REMOVED: Final = "removed"


@dataclass
class ReloadResult:
    file: str
    graph: str
    result: str
    plan_hash: str = ""
    problems: list[str] = field(default_factory=list)
    dropped: int = 0  # events a timed-out drain left behind

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"file": self.file, "graph": self.graph, "result": self.result,
                                  "plan_hash": self.plan_hash}
        if self.problems:
            out["problems"] = self.problems
        if self.dropped:
            out["dropped"] = self.dropped
        return out


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


class Host:
    def __init__(self, registry: SpecRegistry, drain_timeout_s: float,
                 env: Mapping[str, str] | None = None, durable: DurableFactory | None = None) -> None:
        self.registry = registry
        self.durable = durable  # builds durable edges (None: graphs with one are rejected)
        self.drain_timeout_s = drain_timeout_s
        self.env = env
        self.graphs: dict[str, RunningGraph] = {}  # by file name
        self.status: dict[str, GraphStatus] = {}
        self.reloads = 0
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
        # Graph name -> file, so two files cannot run one name; a name already running
        # stays with its file, and a newcomer taking it is the one rejected.
        claimed = {g.name: f for f, g in self.graphs.items() if f in snapshot}
        for name in sorted(snapshot):
            results.append(await self._apply_file(snapshot, name, claimed, restart_stopped))
        for name in sorted(set(self.graphs) - set(snapshot)):
            running = self.graphs.pop(name)
            dropped = await running.stop(self.drain_timeout_s)
            results.append(ReloadResult(name, running.name, REMOVED, running.plan_hash, dropped=dropped))
            self.status.pop(name, None)
        for result in results:
            self._record(result)
        return results

    async def _apply_file(self, snapshot: Snapshot, name: str, claimed: dict[str, str],
                          restart_stopped: bool) -> ReloadResult:
        file = snapshot[name]
        running = self.graphs.get(name)
        current = running.name if running is not None else ""
        if file.error:
            return ReloadResult(name, current, REJECTED, problems=[f"{file.path}: {file.error}"])
        loaded = load_text(str(file.path), file.text, self.registry, self.env)
        errors = [p for p in loaded.problems if p.severity == ERROR]
        if loaded.plan is None or errors:
            problems = [f"{p.file}:{p.line}:{p.column}: {p.code} {p.message}" for p in errors]
            return ReloadResult(name, current or loaded.name, REJECTED, problems=problems)
        plan = loaded.plan
        if claimed.get(plan.name, name) != name:
            return ReloadResult(name, plan.name, REJECTED, problems=[
                f"{file.path}: the graph name '{plan.name}' is already used by {claimed[plan.name]}; "
                "give one of them another `name:`"])
        claimed[plan.name] = name
        plan_hash = plan.content_hash()
        stopped = running is not None and running.state in (STOPPED, DRAINED)
        if running is not None and running.plan_hash == plan_hash and not (restart_stopped and stopped):
            return ReloadResult(name, plan.name, UNCHANGED, plan_hash)
        try:
            runtime = Runtime(plan, self.registry, durable=self.durable)  # built before the old one is touched
        except NodeFailure as exc:
            return ReloadResult(name, plan.name, REJECTED, plan_hash, problems=[str(exc)])
        dropped = await running.stop(self.drain_timeout_s) if running is not None else 0
        replacement = RunningGraph(name, plan, runtime, self._failed)
        self.graphs[name] = replacement
        replacement.start()
        return ReloadResult(name, plan.name, APPLIED, plan_hash, dropped=dropped)

    def _record(self, result: ReloadResult) -> None:
        if result.result == REMOVED:
            LOG.info("reload", extra={"reload": result.to_dict()})
            self.publish("reload", result.file, result.graph, f"{result.file}: {result.result}", result.to_dict())
            return
        status = self.status.setdefault(result.file, GraphStatus(result.file))
        status.graph = result.graph or status.graph
        status.last_result = result.result
        status.last_reload_at = time.time()
        status.problems = result.problems
        running = self.graphs.get(result.file)
        status.plan_hash = running.plan_hash if running is not None else ""
        level = logging.WARNING if result.result == REJECTED else logging.INFO
        LOG.log(level, "reload", extra={"reload": result.to_dict()})
        self.publish("reload", result.file, result.graph, f"{result.file}: {result.result}", result.to_dict())

    async def stop_all(self) -> int:
        """Drain every graph at once (SIGTERM); returns the events left behind."""
        graphs = list(self.graphs.values())
        held = await asyncio.gather(*(g.stop(self.drain_timeout_s) for g in graphs))
        return sum(held)
