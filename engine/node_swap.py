"""A partial reload: replace some nodes of a running graph, keep the rest running.

`prepare` builds everything the new plan needs that is not kept (edges, nodes, chains)
without touching the running graph, so a failure leaves it as it was. `swap` then:

1. detaches the edges from kept producers into replaced consumers (the boundary): the old
   consumer stops taking from them; what waits there is handed to the replacement (moved
   into a new edge object when the edge's options changed);
2. points the kept producers' ports at the new plan's edges;
3. stops the retired sources and lets every retired node drain into the retired sinks
   (bounded by the drain timeout; what is left then is counted and dropped);
4. installs the new nodes and starts them.

Kept producers go on running throughout: until the replacement starts, a `block` boundary
edge fills and pushes back, exactly as a slow consumer would.
"""

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import durability, io_drivers
from engine.chain import SegmentRunner
from engine.edges import Edge, Observer
from engine.node import Batch, NodeFailure
from engine.partition import expand
from engine.plan import GraphPlan
from engine.plan_diff import NodeChanges
from engine.runner import NodeRunner

if TYPE_CHECKING:
    from engine.runtime import Runtime

POLL_S = 0.005  # how often a drain re-checks when nothing wakes it



@dataclass
class Prepared:
    plan: GraphPlan
    changes: NodeChanges
    edges: dict[str, Edge]  # every edge of the new plan: kept, handed over, or new
    fresh: dict[str, Edge]  # new edge objects (some take over a boundary edge's events)
    runners: dict[str, NodeRunner]  # the replaced and added nodes
    segments: list[SegmentRunner]  # their chains


def prepare(rt: "Runtime", plan: GraphPlan, changes: NodeChanges) -> Prepared:
    """Build the new nodes and edges; raises NodeFailure (nothing running is touched).
    `plan` is the graph as loaded; what runs is its expansion (engine/partition.py)."""
    graph = plan
    plan = expand(graph)
    built = changes.built()
    edges: dict[str, Edge] = {}
    fresh: dict[str, Edge] = {}
    for e in plan.edges:
        old = rt.edges.get(e.id)
        if old is not None and old.plan == e and e.from_node not in built:
            edges[e.id] = old  # kept, or handed over to a replaced consumer as it is
        else:
            fresh[e.id] = edges[e.id] = rt.build_edge(e)
    runners: dict[str, NodeRunner] = {}
    for name in sorted(built):
        carried = rt.runners[name].impl if name in changes.carried else None
        runners[name] = rt.build_runner(plan.node(name), edges, carried, graph)
        if carried is not None:  # the same node goes on: so do its counters
            runners[name].events_out = rt.runners[name].events_out
            runners[name].errors = rt.runners[name].errors
    segments = rt.build_chains(plan, runners, edges)
    return Prepared(plan, changes, edges, fresh, runners, segments)


def _visible(rt: "Runtime") -> list[NodeRunner]:
    """Every runner the scheduler or an IO task drives (a chain counts once)."""
    fused = {name for s in rt.segments for name in s.members}
    return [r for r in rt.runners.values() if r.name not in fused] + list(rt.segments)


def _held(retiring: list[NodeRunner], edges: list[Edge]) -> int:
    return sum(e.depth for e in edges) + sum(len(r.pending) + sum(len(b) for _, b in r.backlog) for r in retiring)


async def swap(rt: "Runtime", ready: Prepared, drain_timeout_s: float) -> int:
    """Carry out a prepared partial reload; returns the events a timed-out drain dropped.
    Raises NodeFailure when the graph stops (fails or ends) before the new nodes start."""
    if not rt.scheduling or rt.failure:
        raise NodeFailure("the graph stopped before its nodes could be replaced")
    rt.swapping = True
    try:
        return await _swap(rt, ready, drain_timeout_s)
    except NodeFailure:
        raise
    except Exception as exc:  # a bug: this graph fails, the engine and its other graphs go on
        rt.fail(f"internal error while replacing nodes: {type(exc).__name__}: {exc}")
        raise NodeFailure(rt.failure) from exc
    finally:
        rt.swapping = False
        rt.signal.notify()


async def _swap(rt: "Runtime", ready: Prepared, drain_timeout_s: float) -> int:
    retired = ready.changes.retired()
    kept = [r for r in _visible(rt) if not set(r.members) & retired]
    retiring = [r for r in _visible(rt) if set(r.members) & retired]
    new_ids = {e.id for e in ready.plan.edges}
    boundary = {eid: e for eid, e in rt.edges.items() if e.plan.to_node in retired and e.plan.from_node not in retired}
    # 1. The old consumers stop taking from boundary edges that stay in the plan.
    handed = {eid for eid in boundary if eid in new_ids}
    for r in retiring:
        r.inputs = [e for e in r.inputs if e.id not in handed]
        if isinstance(r, SegmentRunner):
            r.segment.runners[0].inputs = r.inputs
    # 2. Kept producers feed the new plan's edges; what waited on a replaced edge object
    #    moves to its successor, refused events back to the producer, in order.
    for r in kept:
        moved: list[tuple[Edge, Batch]] = []
        for p, port_edges in enumerate(r.outputs):
            node, port = _port_owner(r, p)
            wanted = [ready.edges[e.id] for e in ready.plan.edges if e.from_node == node and e.from_port == port]
            for old in port_edges:
                successor = ready.fresh.get(old.id)
                if successor is not None:
                    rest = successor.offer(old.hand_over())
                    if rest:
                        moved.append((successor, rest))
                    _carry_counters(old, successor)
                    r.backlog = [(successor if edge is old else edge, events) for edge, events in r.backlog]
            port_edges[:] = wanted
            if r.finished:  # it will not close them itself: its new consumers must see the end
                for edge in wanted:
                    edge.closed = True
        r.backlog = moved + r.backlog
    # 3. Retired nodes stop, and drain (a paused one is resumed: it could not drain).
    paused = rt.controls.paused_nodes & retired
    rt.controls.paused_nodes -= retired
    for r in retiring:
        r.stop_requested = True
    leaving = [e for eid, e in boundary.items() if eid not in handed]
    inside = [e for e in rt.edges.values() if e.plan.from_node in retired]
    dropped = await _drain(rt, retiring, kept, leaving, inside, drain_timeout_s)
    await io_drivers.close_io(rt, [rt.runners[n] for n in sorted(retired)])
    if rt.failure or not rt.scheduling:
        raise NodeFailure(f"the graph stopped while its nodes were replaced: {rt.failure or 'it ended'}")
    # 4. Install the new nodes and start them; taps and pauses of the same names go on.
    taps = _taps(rt, ready, retiring)
    _install(rt, ready)
    for edge_id, observe in taps:
        if edge_id in rt.edges:
            rt.controls.tap(edge_id, observe)
    rt.controls.paused_nodes |= paused & ready.changes.built()
    new = list(ready.runners.values())
    durability.resume_sources([r for r in new if r.name not in {m for s in ready.segments for m in s.members}]
                              + list(ready.segments))
    durability.restore_states([r for r in rt.order if r in new or r in ready.segments])
    await io_drivers.open_io(rt, new)
    if not rt.failure:
        rt.tasks.update(io_drivers.start_io(rt, new))
    return dropped


def _carry_counters(old: Edge, new: Edge) -> None:
    """An edge whose options changed is a new object with the same id: its counts go on."""
    new.enqueued += old.enqueued
    new.delivered += old.delivered
    new.dropped += old.dropped
    new.coalesced += old.coalesced
    new.high_water = max(new.high_water, old.high_water)


def _taps(rt: "Runtime", ready: Prepared, retiring: list[NodeRunner]) -> list[tuple[str, Observer]]:
    """The control-plane taps on edge objects and chain links that the reload replaces."""
    out: list[tuple[str, Observer]] = []
    for edge_id, edge in rt.edges.items():
        if ready.edges.get(edge_id) is not edge:
            out.extend((edge_id, observe) for observe in edge.taps)
    for r in retiring:
        if isinstance(r, SegmentRunner):
            for link, observers in r.segment.taps.items():
                out.extend((r.segment.links[link].id, observe) for observe in observers)
    return out


def _port_owner(r: NodeRunner, p: int) -> tuple[str, str]:
    """The member node and port behind a runner's p-th port (a chain has several members)."""
    if isinstance(r, SegmentRunner):
        for j, mapping in enumerate(r.segment.member_ports):
            for own, k in enumerate(mapping):
                if k == p:
                    member = r.segment.runners[j]
                    return member.name, member.plan.outputs[own]
    return r.name, r.plan.outputs[p]


async def _drain(rt: "Runtime", retiring: list[NodeRunner], kept: list[NodeRunner], leaving: list[Edge],
                 inside: list[Edge], timeout_s: float) -> int:
    """Until every retiring node finished (or the timeout); returns the events left behind.
    `leaving` are edges from kept producers to removed consumers: closed once no producer
    still holds events refused by them."""
    deadline = rt.clock.now() + timeout_s
    while True:
        held_back = {id(edge) for r in kept for edge, _ in r.backlog}
        for edge in leaving:
            if id(edge) not in held_back:
                edge.closed = True
        if all(r.finished for r in retiring):
            return 0
        if rt.failure or rt.clock.now() >= deadline:
            break
        rt.signal.notify()
        await rt.signal.wait(POLL_S)
    dropped = _held(retiring, leaving + inside)
    gone = {id(edge) for edge in leaving}
    for r in kept:  # what kept producers still hold for a removed consumer goes with it
        dropped += sum(len(events) for edge, events in r.backlog if id(edge) in gone)
        r.backlog = [(edge, events) for edge, events in r.backlog if id(edge) not in gone]
    for edge in leaving:
        edge.closed = True
    for r in retiring:
        task = rt.tasks.pop(r.name, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        r.flushed = True
        r.close_outputs()
    return dropped


def _install(rt: "Runtime", ready: Prepared) -> None:
    retired = ready.changes.retired()
    for name in retired:
        rt.runners.pop(name, None)
        rt.tasks.pop(name, None)
    for eid in [eid for eid in rt.edges if ready.edges.get(eid) is not rt.edges[eid]]:
        del rt.edges[eid]
    rt.edges.update(ready.edges)  # in place: the controls hold this dict
    rt.segments[:] = [s for s in rt.segments if not set(s.members) & retired] + ready.segments
    rt.runners.update(ready.runners)
    rt.plan = ready.plan
    rt.set_order()
