"""MQTT: `mqtt.read` and `mqtt.write` (docs/connectors.md, "MQTT"), on aiomqtt (paho-mqtt
underneath), which loads only when a graph runs one of them."""

from adapters.io.mqtt.specs import SPECS

__all__ = ["SPECS"]
