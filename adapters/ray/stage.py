"""A stage instance on a Ray actor, and the node in the engine process that feeds it.

Batches cross the boundary as one pickle (protocol 5) each way: the engine's batches are
lists of dicts of JSON values, which the C pickler writes in one pass, writing a repeated
field-name object once per batch (its memo) instead of once per event as JSON would, and
reading back exactly the types that went in (an int stays an int, a float a float). One
remote call carries one batch (up to 1024 events): never one call per event.
"""

import asyncio
import contextlib
import os
import pickle
import socket
import time
from collections import deque
from typing import Any, Final

from adapters.ray.cluster import ray_module
from adapters.ray.spec_codec import decode_spec, encode_spec
from engine.node import INFINITY, AsyncTransform, Batch, Clock, NodeContext, NodeFailure
from engine.partition import instance_name
from engine.runtime import StageFactory
from engine.spec import RuntimeNode
from engine.stage_instance import StageInstance, StageSpec

PROTOCOL: Final = 5
PLACEMENT_TIMEOUT_S: Final = 60.0  # an actor Ray cannot place (no CPUs left) fails the graph then
WATCH_INTERVAL_S: Final = 1.0  # how often an idle instance checks its actor is alive
PIPELINE_DEPTH: Final = 2  # calls out per actor at once (their events within the edge's capacity)

# One reply of the actor: (pickled outputs, its next deadline, member counters, failure).
Reply = tuple[bytes, float, dict[str, dict[str, object]], str]


class StageWorker:
    """What runs inside the actor: the same StageInstance the local executor runs."""

    def __init__(self, spec_text: str) -> None:
        from adapters.cli.registry import default_registry  # in the actor's own process
        self.instance = StageInstance(decode_spec(spec_text), default_registry(), Clock())

    def where(self) -> dict[str, object]:
        ray = ray_module()
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "host": socket.gethostname()}

    def process(self, data: bytes) -> Reply:
        return self._reply(self.instance.process, pickle.loads(data))

    def on_timer(self, now: float) -> Reply:
        return self._reply(self.instance.on_timer, now)

    def flush(self) -> Reply:
        return self._reply(self.instance.flush, None)

    def _reply(self, step: Any, argument: object) -> Reply:
        try:
            outs = step(argument) if argument is not None else step()
        except NodeFailure as exc:  # on_error: stop, inside the actor: the graph fails with it
            return b"", INFINITY, self.instance.counters(), str(exc)
        return pickle.dumps(outs, PROTOCOL), self.instance.deadline(), self.instance.counters(), ""


class RemoteStage(AsyncTransform):
    """The engine-side node of one stage instance: batches to its actor and back."""

    def __init__(self, ctx: NodeContext, spec: StageSpec, cpus: float) -> None:
        super().__init__(ctx)
        self.spec = spec
        self.cpus = cpus
        self.actor: Any = None
        self.next_deadline = INFINITY
        # Zeros until the actor's first reply: every member instance always has its row
        # (`engine ctl status`, /metrics) even while its actor is being placed.
        self.counters: dict[str, dict[str, object]] = {
            instance_name(m.name, spec.index): {"in": 0, "out": 0, "errors": 0, "ports": dict.fromkeys(m.outputs, 0),
                                                "busy_s": 0.0} for m in spec.members}
        self.placed: dict[str, object] = {}
        self.bytes_sent = 0
        self.last_call = 0.0  # when the actor last answered (time.monotonic())
        # Calls sent and not yet answered, oldest first, with their event counts: the next
        # batch waits at the actor while this process reads the last one's results.
        self.pending: deque[tuple[Any, int]] = deque()
        self.placing: asyncio.Future[Any] | None = None

    def where(self) -> str:
        return f"node '{self.spec.stage.name}' instance {self.spec.index} of {self.spec.stage.parallelism}"

    async def open(self) -> None:
        """Ask Ray for the actor and go on: every instance's actor is placed at once, and the
        first call waits for its own (PLACEMENT_TIMEOUT_S at most)."""
        ray = ray_module()
        worker = ray.remote(StageWorker)
        self.actor = worker.options(num_cpus=self.cpus, scheduling_strategy="SPREAD",
                                    max_restarts=0, max_task_retries=0).remote(encode_spec(self.spec))
        self.placing = asyncio.ensure_future(self._call(self.actor.where.remote()))
        self.last_call = time.monotonic()

    async def _placed(self) -> None:
        placing = self.placing
        if placing is None:
            return
        try:
            self.placed = await asyncio.wait_for(placing, PLACEMENT_TIMEOUT_S)
        except TimeoutError:
            raise NodeFailure(f"{self.where()}: Ray could not place its actor within {PLACEMENT_TIMEOUT_S:.0f} s "
                              f"(it asks for {self.cpus:g} CPU; add nodes or lower ray_cpus_per_instance)") from None
        self.placing = None

    async def process(self, batch: Batch, outs: list[Batch]) -> None:
        await self._placed()
        data = pickle.dumps(batch, PROTOCOL)
        self.bytes_sent += len(data)
        self.pending.append((self.actor.process.remote(data), len(batch)))
        while len(self.pending) >= PIPELINE_DEPTH:
            await self._oldest(outs)

    def in_flight(self) -> int:
        return sum(count for _, count in self.pending)

    async def drain(self, outs: list[Batch]) -> None:
        while self.pending:
            await self._oldest(outs)

    async def _oldest(self, outs: list[Batch]) -> None:
        ref, _ = self.pending[0]
        reply = await self._call(ref)
        self.pending.popleft()
        self._take(reply, outs)

    def deadline(self) -> float:
        # An idle instance would notice a dead actor only with its next batch: it calls its
        # actor's timer at least every WATCH_INTERVAL_S, which answers at once when nothing is due.
        watch = self.ctx.clock.now() + (self.last_call + WATCH_INTERVAL_S - time.monotonic())
        return min(self.next_deadline, watch)

    async def on_timer(self, now: float, outs: list[Batch]) -> None:
        await self._placed()
        await self.drain(outs)
        self._take(await self._call(self.actor.on_timer.remote(now)), outs)

    async def flush(self, outs: list[Batch]) -> None:
        await self._placed()
        await self.drain(outs)
        self._take(await self._call(self.actor.flush.remote()), outs)

    async def close(self) -> None:
        if self.placing is not None:
            self.placing.cancel()
        if self.actor is not None:
            # Already gone (it died, or the cluster went away): nothing left to release.
            with contextlib.suppress(Exception):
                ray_module().kill(self.actor, no_restart=True)
            self.actor = None

    def member_counters(self) -> dict[str, dict[str, object]]:
        return self.counters

    def _take(self, reply: Reply, outs: list[Batch]) -> None:
        data, deadline, counters, failure = reply
        self.counters = counters
        self.next_deadline = deadline
        if failure:
            raise NodeFailure(failure)
        results: list[Batch] = pickle.loads(data)
        for k, events in enumerate(results):
            if events:
                outs[k].extend(events)

    async def _call(self, ref: Any) -> Any:
        """Await one remote call; an actor or node that died fails the graph naming the instance."""
        ray = ray_module()
        try:
            reply = await ref
            self.last_call = time.monotonic()
            return reply
        except ray.exceptions.RayActorError as exc:
            raise NodeFailure(f"{self.where()}: its Ray actor died ({_first_line(exc)}); "
                              "the graph stops (reload it to start again)") from None
        except ray.exceptions.RayError as exc:
            raise NodeFailure(f"{self.where()}: Ray failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def stage_factory(cpus: float) -> "StageFactory":
    def build(spec: StageSpec, ctx: NodeContext) -> RuntimeNode:
        return RemoteStage(ctx, spec, cpus)
    return build

