"""NATS and JetStream: `nats.read` and `nats.write` (docs/connectors.md). nats-py loads only
when a graph runs one of them."""

from adapters.io.nats.specs import SPECS

__all__ = ["SPECS"]
