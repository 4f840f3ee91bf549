"""One graph running inside `engine serve`: its runtime task, and a bounded stop."""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from engine.plan import GraphPlan
from engine.runtime import Runtime

LOG: Final = logging.getLogger("headrace")

RUNNING: Final = "running"
FINISHED: Final = "finished"  # every source ended; the graph stays listed until its file changes
FAILED: Final = "failed"
STOPPED: Final = "stopped"
DRAINED: Final = "drained"  # drained on request (engine ctl drain); restarts on a reload


class RunningGraph:
    def __init__(self, file: str, plan: GraphPlan, runtime: Runtime,
                 on_failure: Callable[["RunningGraph"], None] | None = None) -> None:
        self.file = file
        self.on_failure = on_failure
        self.loaded_at = 0.0
        self.runtime = runtime
        self._hashed = plan
        self._hash = plan.content_hash()
        self.task: asyncio.Task[bool] | None = None
        self.state = RUNNING
        self.reason = ""

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def plan(self) -> GraphPlan:
        """The graph as loaded (a partial reload replaces it in place): its hash is the
        file's, and it names the user's nodes. What runs (`runtime.plan`) differs when the
        graph has partitioned stages: each expanded into a router and its instances."""
        return self.runtime.graph_plan

    @property
    def plan_hash(self) -> str:
        plan = self.runtime.graph_plan
        if plan is not self._hashed:
            self._hashed, self._hash = plan, plan.content_hash()
        return self._hash

    def replaced(self) -> None:
        """Some of its nodes were replaced in place (a partial reload)."""
        self.loaded_at = time.time()

    def start(self) -> None:
        self.loaded_at = time.time()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> bool:
        try:
            ok = await self.runtime.run()
        except Exception as exc:  # a bug in a node: this graph fails, the others go on
            self.runtime.fail(f"internal error: {type(exc).__name__}: {exc}")
            ok = False
        if self.state == RUNNING:
            self.state = FINISHED if ok else FAILED
            self.reason = "" if ok else self.runtime.failure
            if not ok:
                LOG.error(f"graph '{self.name}' ({self.file}) failed: {self.runtime.failure}",
                          extra={"graph": self.name})
                if self.on_failure is not None:
                    self.on_failure(self)
        return ok

    async def stop(self, drain_timeout_s: float) -> int:
        """Stop the sources, let the edges drain into the sinks for at most the timeout,
        then stop for good. Returns how many events were still held (0: fully drained)."""
        task = self.task
        if task is None:
            return 0
        was = self.state
        self.state = STOPPED
        self.runtime.request_stop()
        done, _ = await asyncio.wait({task}, timeout=drain_timeout_s)
        held = 0
        if not done:
            held = self.runtime.held()
            self.runtime.fail(f"drain timeout after {drain_timeout_s:g}s")
            await asyncio.wait({task})
        if was == FAILED:
            self.state = FAILED
        return held
