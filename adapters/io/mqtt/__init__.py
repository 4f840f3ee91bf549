"""MQTT: `mqtt.read` and `mqtt.write` (docs/connectors.md)."""

from engine.spec import NodeSpec

SPECS: tuple[NodeSpec, ...] = ()  # filled in by the connector's specs module
