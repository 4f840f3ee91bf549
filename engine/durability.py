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
    """Acknowledge what `r` consumed and handed on; its state goes in the same commit."""
    if not r.deferred_ack:
        return
    impl = r.impl
    # Only a durable edge keeps a state: without one, asking for it is wasted work per batch.
    if isinstance(impl, Transform) and any(edge.plan.durable for edge in r.inputs):
        state = impl.state()
        if state:
            for edge in r.inputs:
                edge.stage_checkpoint(r.name + STATE_SUFFIX, state)
    r.ack_deferred()


def checkpoint(r: NodeRunner, position: str) -> None:
    if position:
        for edge in durable_outputs(r):
            edge.stage_checkpoint(r.name, position)
