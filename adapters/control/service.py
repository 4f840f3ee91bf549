"""`headrace.control.v1.Control`: what `engine ctl` asks of a running `engine serve`.

Reads come straight from the host's running graphs. Changes go through the same paths a
file change takes: `Apply` writes the file into the served directory (atomically) and
reloads, `Remove` deletes it and reloads, so the directory stays the one source of truth
and a restart comes back to the same graphs. Every mutating call is written to the audit
log when one is configured.
"""

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc

from adapters.atomic_file import replace_file
from adapters.control.audit import AuditLog
from adapters.control.auth import principal
from adapters.control.diagnostics import LogView
from adapters.control.partitions import has_node, node_rows, node_state
from adapters.control.taps import TapStream
from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc
from adapters.control.watch import EventStream
from adapters.serve.host import Host, ReloadResult
from adapters.serve.running import DRAINED, RunningGraph
from adapters.serve.scan import is_graph_name
from adapters.serve.server import Server
from adapters.serve.vocabulary import REMOVED, UNCHANGED
from adapters.trust.signature import check_file, file_signature_name
from engine.plan_diff import NodeChanges
from loader.api import load_text
from loader.problems import ERROR

if TYPE_CHECKING:  # the stubs are generic, the runtime class is not
    Context = grpc.aio.ServicerContext[Any, Any]
else:
    Context = grpc.aio.ServicerContext

PAUSED: Final = "paused"
REJECTED_STATE: Final = "rejected"



def _connection(counters: dict[str, Any]) -> dict[str, Any]:
    """A connector's connection fields (engine/runtime.py `node_counters` merges its
    `health()`, last_error already masked); none for other nodes."""
    if "connection" not in counters:
        return {}
    return {"connection": str(counters["connection"]), "reconnects": int(counters.get("reconnects", 0)),
            "last_error": str(counters.get("last_error", ""))}

class _StalePlan(Exception):
    """Apply's expected plan hash is not the running one."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


def _nodes(changes: NodeChanges | None) -> pb.NodeChanges | None:
    if changes is None:
        return None
    return pb.NodeChanges(kept=changes.kept, replaced=changes.replaced, added=changes.added,
                          removed=changes.removed, whole_swap=changes.whole_swap)


def _result(r: ReloadResult) -> pb.ReloadResult:
    return pb.ReloadResult(file=r.file, graph=r.graph, result=r.result, plan_hash=r.plan_hash,
                           problems=r.problems, dropped=r.dropped, nodes=_nodes(r.nodes))


class ControlService(control_pb2_grpc.ControlServicer):
    def __init__(self, server: Server, host: Host, audit: AuditLog | None, token_set: bool,
                 drain_timeout_s: float, logs: LogView | None = None) -> None:
        self.logs = logs if logs is not None else LogView(host, None, None)
        self.server = server
        self.host = host
        self.audit = audit
        self.token_set = token_set
        self.drain_timeout_s = drain_timeout_s

    # -- helpers -----------------------------------------------------------------------

    def _find(self, name: str) -> RunningGraph | None:
        for running in self.host.graphs.values():
            if name in (running.name, running.file):
                return running
        return None

    async def _running(self, name: str, context: Context) -> RunningGraph:
        running = self._find(name)
        if running is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no graph '{name}' is running")
        assert running is not None
        return running

    def _audit(self, context: Context, method: str, target: str, result: str,
               detail: str = "") -> None:
        if self.audit is not None:
            self.audit.record(principal(context, self.token_set), method, target, result, detail)

    def _summary(self, file: str) -> pb.GraphSummary:
        status = self.host.status.get(file)
        running = self.host.graphs.get(file)
        state = running.state if running is not None else REJECTED_STATE
        if running is not None and state == "running" and running.runtime.controls.paused_graph:
            state = PAUSED
        return pb.GraphSummary(
            name=running.name if running is not None else (status.graph if status else ""),
            file=file, state=state,
            plan_hash=running.plan_hash if running is not None else "",
            last_result=status.last_result if status else "",
            last_reload_at=status.last_reload_at if status else 0.0,
            loaded_at=running.loaded_at if running is not None else 0.0,
            problems=status.problems if status else [],
            last_nodes=_nodes(status.last_nodes) if status else None)

    # -- reads -------------------------------------------------------------------------

    async def ListGraphs(self, request: pb.ListGraphsRequest, context: Context) -> pb.ListGraphsResponse:
        files = sorted(set(self.host.graphs) | set(self.host.status))
        return pb.ListGraphsResponse(graphs=[self._summary(f) for f in files])

    async def GetGraph(self, request: pb.GetGraphRequest, context: Context) -> pb.Graph:
        running = await self._running(request.graph, context)
        runtime = running.runtime
        stats = runtime.stats()
        nodes_stats = stats["nodes"]
        edges_stats = stats["edges"]
        assert isinstance(nodes_stats, dict) and isinstance(edges_stats, dict)
        nodes = []
        for name, node_type, inputs in node_rows(running.plan, runtime):
            counters = nodes_stats[name]
            nodes.append(pb.NodeState(name=name, type=node_type, state=node_state(runtime, name), inputs=inputs,
                                      events_in=counters["in"], events_out=counters["out"],
                                      errors=counters["errors"], events_out_by_port=counters["ports"],
                                      busy_seconds=counters["busy_s"], **_connection(counters)))
        edges = []
        for edge in runtime.plan.edges:  # as they run: a partitioned stage's edge per instance
            c = edges_stats[edge.id]
            edges.append(pb.EdgeState(id=edge.id, from_node=edge.from_node, from_port=edge.from_port,
                                      to_node=edge.to_node, policy=edge.policy, capacity=edge.capacity,
                                      depth=c["depth"], enqueued=c["enqueued"], dropped=c["dropped"],
                                      coalesced=c["coalesced"], high_water=c["high_water"],
                                      blocked_seconds=c["blocked_s"]))
        return pb.Graph(summary=self._summary(running.file), nodes=nodes, edges=edges,
                        failure=runtime.failure)

    async def GetLogs(self, request: pb.GetLogsRequest, context: Context) -> pb.GetLogsResponse:
        answer = self.logs.logs(request.limit)
        # A read, but of the engine's own records: written down like the changes are.
        self._audit(context, "GetLogs", "", "ok", f"{len(answer.lines)} lines, {len(answer.events)} events")
        return answer

    async def GetPlan(self, request: pb.GetPlanRequest, context: Context) -> pb.PlanView:
        running = await self._running(request.graph, context)
        self._audit(context, "GetPlan", running.name, "ok", running.plan_hash)
        return self.logs.plan(running)

    # -- changes -----------------------------------------------------------------------

    async def _pause(self, request: pb.PauseRequest, context: Context, pause: bool) -> pb.PauseResponse:
        method = "Pause" if pause else "Resume"
        running = await self._running(request.graph, context)
        target = running.name + (f"/{request.node}" if request.node else "")
        if request.node and not has_node(running.runtime, request.node):
            self._audit(context, method, target, "not found")
            await context.abort(grpc.StatusCode.NOT_FOUND, f"graph '{running.name}' has no node '{request.node}'")
        runtime = running.runtime
        controls = runtime.controls
        changed = controls.pause(request.node) if pause else controls.resume(request.node)
        self._audit(context, method, target, "ok" if changed else "unchanged")
        self.host.publish("state", running.file, running.name, f"{target}: {'paused' if pause else 'resumed'}",
                          {"graph": running.name, "node": request.node, "paused": pause})
        return pb.PauseResponse(graph=running.name, node=request.node, paused=pause, changed=changed)

    async def Pause(self, request: pb.PauseRequest, context: Context) -> pb.PauseResponse:
        return await self._pause(request, context, True)

    async def Resume(self, request: pb.PauseRequest, context: Context) -> pb.PauseResponse:
        return await self._pause(request, context, False)

    async def Drain(self, request: pb.DrainRequest, context: Context) -> pb.DrainResponse:
        running = await self._running(request.graph, context)
        timeout = request.timeout_s if request.timeout_s > 0 else self.drain_timeout_s
        remaining = await running.stop(timeout)
        running.state = DRAINED
        self._audit(context, "Drain", running.name, "drained" if remaining == 0 else f"{remaining} remain")
        self.host.publish("state", running.file, running.name, f"{running.name}: drained",
                          {"graph": running.name, "state": DRAINED, "remaining": remaining})
        return pb.DrainResponse(graph=running.name, drained=remaining == 0, remaining=remaining)

    async def _reload(self, context: Context, restart_drained: bool = False,
                      change: Callable[[], None] | None = None) -> list[ReloadResult]:
        results = await self.server.reload_now(restart_drained, change)
        if results is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"the served directory {self.server.directory} is missing")
        assert results is not None
        return results

    async def Reload(self, request: pb.ReloadRequest, context: Context) -> pb.ReloadResponse:
        results = await self._reload(context, restart_drained=True)
        self._audit(context, "Reload", str(self.server.directory),
                    ", ".join(f"{r.file}: {r.result}" for r in results) or "no graphs")
        return pb.ReloadResponse(results=[_result(r) for r in results])

    async def Apply(self, request: pb.ApplyRequest, context: Context) -> pb.ApplyResponse:
        name = request.file
        if not is_graph_name(name) or "/" in name or "\\" in name:
            self._audit(context, "Apply", name, "refused: bad file name")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"'{name}' is not a graph file name: use NAME.yaml, NAME.yml or NAME.toml, "
                                "without a folder and not starting with '.'")
        path = self.server.directory / name
        gate = self.server.gate
        if gate is not None:  # trusted_keys: only a file signed by a trusted key is written
            unsigned = check_file(name, request.document, request.signature.encode("utf-8"), gate.keys)
            if unsigned:
                self._audit(context, "Apply", name, "refused: signature", unsigned)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, unsigned)
        # Problems name the file as the client sent it, not a path on this server.
        loaded = load_text(name, request.document, self.host.registry, self.host.env)
        errors = [p for p in loaded.problems if p.severity == ERROR]
        if loaded.plan is None or errors:
            lines = [f"{p.file}:{p.line}:{p.column}: {p.code} {p.message}" for p in errors]
            self._audit(context, "Apply", name, "refused: invalid", f"{len(errors)} problems")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{name} has {len(errors)} problem(s), nothing was changed:\n" + "\n".join(lines))
        assert loaded.plan is not None
        owner = next((g for g in self.host.graphs.values() if g.name == loaded.plan.name), None)
        if owner is not None and owner.file != name:
            self._audit(context, "Apply", name, "refused: name in use")
            await context.abort(grpc.StatusCode.ALREADY_EXISTS,
                                f"the graph name '{loaded.plan.name}' is already used by {owner.file}; "
                                "give the document another `name:`, or apply it as that file")

        def write() -> None:  # under the reload lock: the hash check and the write are one step
            running = self.host.graphs.get(name)
            current = running.plan_hash if running is not None else "none"
            if request.expected_plan_hash and request.expected_plan_hash != current:
                raise _StalePlan(current)
            if gate is not None:  # first, so the directory is never left with an unsigned file
                replace_file(self.server.directory / file_signature_name(name), request.signature.encode("utf-8"))
            replace_file(path, request.document.encode("utf-8"))

        try:
            results = await self._reload(context, change=write)
        except _StalePlan as stale:
            self._audit(context, "Apply", name, "refused: stale plan hash")
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"{name} runs plan {stale.current}, not the expected {request.expected_plan_hash}; "
                                "get the current hash with `engine ctl status` and apply again")
        except OSError as exc:
            self._audit(context, "Apply", name, "refused: cannot write")
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"cannot write {path}: {exc.strerror or exc} (a git-synced or ConfigMap "
                                "directory is read-only: change the graph in git instead)")
        mine = next((r for r in results if r.file == name), ReloadResult(name, "", UNCHANGED))
        self._audit(context, "Apply", name, mine.result, mine.plan_hash)
        return pb.ApplyResponse(result=_result(mine))

    async def Remove(self, request: pb.RemoveRequest, context: Context) -> pb.RemoveResponse:
        running = await self._running(request.graph, context)
        path = self.server.directory / running.file
        if self.server.gate is not None:
            self._audit(context, "Remove", running.name, "refused: signature")
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"the engine accepts only signed graph directories (trusted_keys): remove "
                                f"{running.file} from the bundle and sign the directory again")
        try:
            results = await self._reload(context, change=lambda: path.unlink(missing_ok=True))
        except OSError as exc:
            self._audit(context, "Remove", running.name, "refused: cannot delete")
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot delete {path}: {exc.strerror or exc}")
        mine = next((r for r in results if r.file == running.file), ReloadResult(running.file, running.name, REMOVED))
        self._audit(context, "Remove", running.name, mine.result)
        return pb.RemoveResponse(result=_result(mine))

    # -- streams -----------------------------------------------------------------------

    async def Tap(self, request: pb.TapRequest, context: Context) -> AsyncIterator[pb.TapEvent]:
        running = await self._running(request.graph, context)
        if request.edge not in running.runtime.edges:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"graph '{running.name}' has no edge '{request.edge}'; "
                                "its edges: " + ", ".join(sorted(running.runtime.edges)))
        if request.every and request.per_second:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "a tap of every event has no rate: leave per_second at 0")
        stream = TapStream(running, request.edge, request.per_second or 10.0, request.every, request.limit)
        sent = 0
        try:
            async for missed, text in stream.events(lambda: self.host.graphs.get(running.file) is running):
                yield pb.TapEvent(edge=request.edge, time=time.time(), json=text, missed=missed, every=request.every)
                sent += 1
                if request.limit and sent >= request.limit:
                    return
        finally:
            stream.close()

    async def WatchEvents(self, request: pb.WatchEventsRequest,
                          context: Context) -> AsyncIterator[pb.EngineEvent]:
        stream = EventStream(self.host)
        try:
            async for event in stream.events():
                yield event
        finally:
            stream.close()
