"""What the control plane answers `engine diagnostics collect` with: the log lines the engine
kept in memory, its recent engine events, and running plans, all with secret values masked.

Log lines already passed the logger's mask (URL passwords, `password=` pairs) and each
node's own (its secret parameters). Here a last net goes over every line and event before
it leaves the process: each running graph's literal secret strings (as `engine plan` would
hide them, and the credentials of a `Bearer <token>` value alone) and the control token are
replaced by `****`, also in their JSON-escaped form, since events carry JSON text.
"""

import json
import time
from collections import deque
from typing import Final

from adapters.control.v1 import control_pb2 as pb
from adapters.serve.host import Host
from adapters.serve.logs import RecentLines
from adapters.serve.running import RunningGraph
from engine.plan import canonical_json
from engine.secrets import MASK, SHORTEST_KNOWN, mask_known, plan_secret_texts, printable_plan

KEPT_EVENTS: Final = 200  # the recent engine events kept for GetLogs


class RecentEvents:
    """The newest engine events (reloads, state changes, errors), from the engine's start."""

    def __init__(self, host: Host, capacity: int = KEPT_EVENTS) -> None:
        self.kept: deque[pb.EngineEvent] = deque(maxlen=capacity)
        host.listeners.append(self.publish)

    def publish(self, kind: str, file: str, graph: str, detail: str, record: dict[str, object]) -> None:
        self.kept.append(pb.EngineEvent(time=time.time(), kind=kind, graph=graph, file=file, detail=detail,
                                        json=json.dumps(record, default=str, separators=(",", ":"))))


class LogView:
    def __init__(self, host: Host, recent: RecentLines | None, token: str | None) -> None:
        self.host = host
        self.recent = recent
        self.events = RecentEvents(host)
        self.token = token

    def secrets(self) -> tuple[str, ...]:
        """Every literal secret the engine knows of now, longest first, raw and JSON-escaped."""
        found: set[str] = set()
        for running in self.host.graphs.values():
            found.update(plan_secret_texts(running.plan, self.host.registry))
        # `Bearer <token>`: the credentials alone may turn up in a line too.
        found.update(parts[1] for parts in (text.split() for text in list(found))
                     if len(parts) == 2 and parts[0].isalpha())
        if self.token:
            found.add(self.token)
        escaped = {json.dumps(text)[1:-1] for text in found}
        return tuple(sorted((t for t in found | escaped if len(t) >= SHORTEST_KNOWN), key=lambda t: (-len(t), t)))

    def logs(self, limit: int) -> pb.GetLogsResponse:
        secrets = self.secrets()
        lines: list[pb.LogLine] = []
        discarded = 0
        capacity = 0
        if self.recent is not None:
            kept, discarded = self.recent.newest(limit)
            capacity = self.recent.capacity
            lines = [pb.LogLine(time=k.time, level=k.level, text=mask_known(k.text, secrets)) for k in kept]
        events = [pb.EngineEvent(time=e.time, kind=e.kind, graph=e.graph, file=e.file,
                                 detail=mask_known(e.detail, secrets), json=_without(e.json, secrets))
                  for e in self.events.kept]
        return pb.GetLogsResponse(lines=lines, discarded=discarded, capacity=capacity, events=events)

    def plan(self, running: RunningGraph) -> pb.PlanView:
        shown = canonical_json(printable_plan(running.plan, self.host.registry), indent=2)
        return pb.PlanView(graph=running.name, file=running.file, plan_hash=running.plan_hash,
                           json=_without(shown, self.secrets()))


def _without(json_text: str, secrets: tuple[str, ...]) -> str:
    """JSON text with each literal secret as `****`. Only literals: `mask_value`'s patterns
    would run past a closing quote and break the JSON."""
    for secret in secrets:
        if secret in json_text:
            json_text = json_text.replace(secret, MASK)
    return json_text
