"""The asyncio side of a runtime: IO sources and sinks as tasks that meet the core through
edges, their open/close, and retries of IO failures with backoff.

The core scheduler never awaits these tasks; they wake it through the runtime's signal.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from engine.durability import durable_outputs
from engine.node import INFINITY, AsyncSink, AsyncSource, AsyncTransform, Batch, NodeFailure
from engine.runner import NodeRunner

if TYPE_CHECKING:
    from engine.runtime import Runtime

Action = Callable[[], Awaitable[None]]


async def with_retries(rt: "Runtime", r: NodeRunner, action: Action) -> None:
    """IO failures are retried when the node's `on_error` says retry, then fatal."""
    policy = r.ctx.on_error
    attempt = 0
    while True:
        try:
            await action()
            return
        except NodeFailure:
            if policy.action != "retry" or attempt >= policy.attempts or rt.stopping or r.stop_requested:
                raise
            await asyncio.sleep(policy.backoff_ms / 1000.0 * (2 ** attempt))
            attempt += 1


async def open_io(rt: "Runtime", runners: list[NodeRunner]) -> None:
    """Open every IO node of `runners`; the first that cannot open fails the graph. A stop
    ends an open that waits (a server that is down, a connector reconnecting): the graph
    then drains what it has, which is nothing, instead of waiting for the server."""
    for r in runners:
        impl = r.impl
        if isinstance(impl, (AsyncSource, AsyncSink, AsyncTransform)) and not await _open_unless_stopped(rt, r, impl):
            return


async def _open_unless_stopped(rt: "Runtime", r: NodeRunner, impl: AsyncSource | AsyncSink | AsyncTransform) -> bool:
    def stop_opening() -> bool:
        return rt.stopping or r.stop_requested or bool(rt.failure)

    opening = asyncio.ensure_future(with_retries(rt, r, impl.open))
    stopped = asyncio.ensure_future(rt.signal.until(stop_opening))
    await asyncio.wait({opening, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not opening.done():
        opening.cancel()
        await asyncio.wait({opening})
        return False
    try:
        opening.result()
    except NodeFailure as exc:
        rt.fail(str(exc))
        return False
    return True


async def close_io(rt: "Runtime", runners: list[NodeRunner]) -> None:
    for r in runners:
        impl = r.impl
        if isinstance(impl, (AsyncSource, AsyncSink, AsyncTransform)):
            try:
                await impl.close()
            except NodeFailure as exc:
                rt.fail(str(exc))


def start_io(rt: "Runtime", runners: list[NodeRunner]) -> dict[str, "asyncio.Task[None]"]:
    """One task per IO source and sink among `runners`, by node name."""
    tasks: dict[str, asyncio.Task[None]] = {}
    for r in runners:
        if isinstance(r.impl, AsyncSource):
            tasks[r.name] = asyncio.ensure_future(drive_source(rt, r))
        elif isinstance(r.impl, AsyncSink):
            tasks[r.name] = asyncio.ensure_future(drive_sink(rt, r))
        elif isinstance(r.impl, AsyncTransform):
            tasks[r.name] = asyncio.ensure_future(drive_transform(rt, r))
    return tasks


async def drive_source(rt: "Runtime", r: NodeRunner) -> None:
    source = r.impl
    assert isinstance(source, AsyncSource)

    def stop_reading() -> bool:
        return rt.stopping or r.stop_requested or bool(rt.failure)

    try:
        while not stop_reading():
            if rt.controls.is_paused(r):
                await rt.signal.wait(INFINITY)
                continue
            outs = r.new_outs()
            source.durable_outputs = bool(durable_outputs(r))  # a reload may change the edges
            reading = asyncio.ensure_future(source.read(r.errors, outs))
            stopped = asyncio.ensure_future(rt.signal.until(stop_reading))
            await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not reading.done():
                reading.cancel()
                break
            alive = reading.result()
            rt.checkpoint(r, source.position())
            r.distribute(outs)
            rt.signal.notify()
            await _hand_on(rt, r)
            if not r.backlog:
                source.handed_on()
            if not alive:
                break
    except NodeFailure as exc:
        rt.fail(str(exc))
    except Exception as error:  # a bug in a source: the graph fails with it, never silently
        # (its own name: mypyc types a name shared by two handlers as the first one's class)
        rt.fail(_unexpected(r, error))
    finally:
        source.done_reading()
        _finished(rt, r)


async def drive_sink(rt: "Runtime", r: NodeRunner) -> None:
    sink = r.impl
    assert isinstance(sink, AsyncSink)
    sink.failures = r.errors
    try:
        while not rt.failure:
            if rt.controls.is_paused(r):
                await rt.signal.wait(INFINITY)
                continue
            batch = r.take_input(rt.budget)
            if batch:
                rt.signal.notify()  # room was freed upstream
                outs = r.new_outs()
                sink.failed_outs = outs
                started = time.perf_counter()
                await with_retries(rt, r, _WriteCall(sink, batch).run)
                r.busy_s += time.perf_counter() - started  # writing, waits on disk or network included
                r.events_in += len(batch)
                r.ack(len(batch))  # written and flushed
                rt.signal.notify()  # a durable edge has room only now that its events are acknowledged
                if r.distribute(outs):  # dead letters of events the sink gave up on
                    await _hand_on(rt, r)
                continue
            if r.inputs_drained():
                break
            await rt.signal.wait(INFINITY)
    except NodeFailure as exc:
        rt.fail(str(exc))
    except Exception as error:
        rt.fail(_unexpected(r, error))
    finally:
        _finished(rt, r)


async def drive_transform(rt: "Runtime", r: NodeRunner) -> None:
    """An awaited transform (a stage instance on a Ray actor): one batch at a time. Its
    input edge counts the batch out for processing against its capacity, so at most
    `capacity` events are in flight per instance (queued, or being processed)."""
    impl = r.impl
    assert isinstance(impl, AsyncTransform)
    try:
        while not rt.failure:
            if rt.controls.is_paused(r):
                await rt.signal.wait(INFINITY)
                continue
            now = rt.clock.now()
            if impl.deadline() <= now:
                outs = r.new_outs()
                await impl.on_timer(now, outs)
                await _emit(rt, r, outs)
                continue
            # Half the capacity per batch: two batches in flight keep the remote side busy
            # while the next one travels, and the edge's room counts both (see below).
            capacity = min([e.plan.capacity for e in r.inputs] or [rt.budget])
            limit = min(max(1, capacity // 2), capacity - impl.in_flight())
            batch = r.take_input(limit) if limit > 0 else []
            if batch:
                rt.signal.notify()  # room was freed upstream
                await _process_counted(rt, r, impl, batch)
                continue
            if impl.in_flight():  # no more input now: the results of what is out come first
                outs = r.new_outs()
                await impl.drain(outs)
                _count_in_flight(r, impl)
                await _emit(rt, r, outs)
                continue
            if r.inputs_drained():
                outs = r.new_outs()
                await impl.flush(outs)
                await _emit(rt, r, outs)
                break
            wait = impl.deadline() - rt.clock.now()
            await rt.signal.wait(wait if wait > 0 else 0.0)
    except NodeFailure as exc:
        rt.fail(str(exc))
    except Exception as error:
        rt.fail(_unexpected(r, error))
    finally:
        _finished(rt, r)


async def _process_counted(rt: "Runtime", r: NodeRunner, impl: AsyncTransform, batch: Batch) -> None:
    # While a batch is out, its events count against the input edge's room: queued and
    # processing together stay within `capacity`.
    for edge in r.inputs:
        edge.capacity = max(1, edge.plan.capacity - impl.in_flight() - len(batch))
    outs = r.new_outs()
    started = time.perf_counter()
    try:
        await impl.process(batch, outs)
    finally:
        _count_in_flight(r, impl)
    r.busy_s += time.perf_counter() - started  # waiting for the remote side included
    r.events_in += len(batch)
    r.ack(len(batch))
    rt.signal.notify()
    await _emit(rt, r, outs)


def _count_in_flight(r: NodeRunner, impl: AsyncTransform) -> None:
    for edge in r.inputs:
        edge.capacity = max(1, edge.plan.capacity - impl.in_flight())


async def _emit(rt: "Runtime", r: NodeRunner, outs: list[Batch]) -> None:
    if r.distribute(outs):
        rt.signal.notify()
        await _hand_on(rt, r)


def _unexpected(r: NodeRunner, exc: Exception) -> str:
    return f"node '{r.name}': unexpected {type(exc).__name__}: {exc}"


async def _hand_on(rt: "Runtime", r: NodeRunner) -> None:
    """Until every event the node's edges refused is taken (or the graph failed)."""
    while r.backlog and not rt.failure:
        await rt.signal.wait(INFINITY)
        r.flush_backlog()


def _finished(rt: "Runtime", r: NodeRunner) -> None:
    r.flushed = True
    r.close_outputs()
    rt.signal.notify()


class _WriteCall:
    """One `sink.write(batch)` as a retryable action."""

    def __init__(self, sink: AsyncSink, batch: list[dict[str, object]]) -> None:
        self.sink = sink
        self.batch = batch

    async def run(self) -> None:
        await self.sink.write(self.batch)
