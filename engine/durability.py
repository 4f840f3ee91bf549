"""Where durable edges meet the nodes: source positions and transform states are saved
in the same LMDB transaction as the events they belong to, and taken back at start."""

from typing import Final

from engine.edges import Edge
from engine.node import AsyncSource, Source, Transform
from engine.runner import NodeRunner

STATE_SUFFIX: Final = "#state"  # checkpoint name of a node's saved state


def durable_outputs(r: NodeRunner) -> list[Edge]:
    return [edge for port in r.outputs for edge in port if edge.plan.durable]


def resume_sources(runners: list[NodeRunner]) -> None:
    """Sources feeding a durable edge continue where its last commit left them."""
    for r in runners:
        impl = r.impl
        if isinstance(impl, (Source, AsyncSource)):
            durable = durable_outputs(r)
            position = durable[0].checkpoint(r.name) if durable else ""
            if position:
                impl.resume(position)


def restore_states(runners: list[NodeRunner]) -> None:
    """Transforms reading a durable edge take back the state saved with its last ack."""
    for r in runners:
        impl = r.impl
        if isinstance(impl, Transform):
            durable = [e for e in r.inputs if e.plan.durable]
            state = durable[0].checkpoint(r.name + STATE_SUFFIX) if durable else ""
            if state:
                impl.restore(state)


def ack(r: NodeRunner) -> None:
    """Acknowledge what `r` consumed and handed on; its state goes in the same commit. A
    node that hands a durable edge's events on to memory edges holds the acknowledgement
    instead (`release_held`): what it handed on is not safe until it has left the graph."""
    if not r.deferred_ack:
        return
    if r.holds_acks:
        r.held_ack += r.deferred_ack
        r.deferred_ack = 0
        return
    _ack_now(r)


def _ack_now(r: NodeRunner) -> None:
    impl = r.impl
    # Only a durable edge keeps a state: without one, asking for it is wasted work per batch.
    if isinstance(impl, Transform) and any(edge.plan.durable for edge in r.inputs):
        state = impl.state()
        if state:
            for edge in r.inputs:
                edge.stage_checkpoint(r.name + STATE_SUFFIX, state)
    r.ack_deferred()


def holds_acks(r: NodeRunner) -> bool:
    """`r` reads a durable edge and writes to a memory edge: a crash would lose what the
    memory edges and the nodes after them hold, so the durable edge must keep those events
    until they are out of the graph (written by a sink, dropped, or on another durable edge)."""
    return any(e.plan.durable for e in r.inputs) and any(not e.plan.durable for port in r.outputs for e in port)


def release_held(r: NodeRunner, readers: dict[str, NodeRunner]) -> bool:
    """Acknowledge what `r` holds once nothing it handed on is still inside the graph: every
    memory edge after it empty and every node reading them idle, up to the next durable edge
    or sink (`readers`: edge id -> the runner that takes from it). `r` itself must be idle
    too, so that its state, saved with the acknowledgement, covers exactly what is acknowledged.
    A steady stream still gets acknowledged: the durable edge counts what it delivered and
    has not had acknowledged against its capacity, so it stops taking events and the
    nodes after it catch up."""
    if not r.held_ack or r.deferred_ack or r.pending or r.backlog or not _drained_after(r, readers):
        return False
    r.deferred_ack, r.held_ack = r.held_ack, 0
    _ack_now(r)
    return True


def _drained_after(r: NodeRunner, readers: dict[str, NodeRunner]) -> bool:
    stack = [e for port in r.outputs for e in port if not e.plan.durable]
    seen: set[str] = set()
    while stack:
        edge = stack.pop()
        if edge.plan.id in seen:
            continue
        seen.add(edge.plan.id)
        if edge.depth:
            return False
        reader = readers.get(edge.plan.id)
        if reader is None:
            continue
        # Taken and not handed on yet (a sink writing, a node with refused results), or
        # results waiting to be acknowledged.
        if reader.unacked or reader.pending or reader.backlog:
            return False
        stack.extend(e for port in reader.outputs for e in port if not e.plan.durable)
    return True


def checkpoint(r: NodeRunner, position: str) -> None:
    if position:
        for edge in durable_outputs(r):
            edge.stage_checkpoint(r.name, position)
