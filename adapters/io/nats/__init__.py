"""NATS and JetStream: `nats.read` and `nats.write` (docs/connectors.md). nats-py."""

from engine.spec import NodeSpec

SPECS: tuple[NodeSpec, ...] = ()  # filled in by the connector's specs module
