"""Specs of `mqtt.read` and `mqtt.write` (docs/connectors.md, "MQTT"). aiomqtt loads only
when a graph runs one of them."""

from typing import Final

from adapters.io.mqtt.params import (
    JSON,
    KEEPALIVE,
    PUBLISH_TIMEOUT,
    READ_BATCH,
    READ_INFLIGHT,
    TEXT,
    V5,
    V311,
    WRITE_INFLIGHT,
    parse_mqtt_read,
    parse_mqtt_write,
)
from engine.node import AsyncSink, AsyncSource, NodeContext
from engine.spec import DURATION, SINK, SOURCE, NodeSpec, param, params_schema

SECRETS: Final = ("url", "password")
TOPIC_FILTER: Final[dict[str, object]] = {"type": "string", "minLength": 1}
TOPIC_NAME: Final[dict[str, object]] = {"type": "string", "minLength": 1, "pattern": "^[^+#]*$"}
FIELD: Final[dict[str, object]] = {"type": "string", "minLength": 1}


def make_mqtt_read(ctx: NodeContext) -> AsyncSource:
    from adapters.io.mqtt.read import MqttRead  # aiomqtt loads only for graphs that use it
    return MqttRead(ctx)


def make_mqtt_write(ctx: NodeContext) -> AsyncSink:
    from adapters.io.mqtt.write import MqttWrite
    return MqttWrite(ctx)


def broker_params(client_id_note: str) -> dict[str, dict[str, object]]:
    """The connection parameters both node types take."""
    return {
        "url": param({"type": "string", "minLength": 1},
                     "The broker: `mqtt://host:1883`, `mqtts://host:8883` for TLS; may carry "
                     "`user:password@` (the password is masked wherever the graph is shown).",
                     "mqtt://user:${MQTT_PASSWORD}@broker:1883"),
        "username": param({"type": "string"}, "User name, instead of the one in `url`.", "sensors"),
        "password": param({"type": "string"}, "Password, instead of the one in `url`.", "${MQTT_PASSWORD}"),
        "client_id": param({"type": "string", "minLength": 1, "maxLength": 65535}, client_id_note,
                           "headrace-sensors"),
        "protocol": param({"enum": [V5, V311]},
                          "MQTT version. 5 lets the reader bound what the broker sends before it "
                          "acknowledges (Receive Maximum); 3.1.1 for brokers without 5.", V311, default=V5),
        "keepalive": param(DURATION, "Seconds between pings while idle; a dead connection is noticed "
                           "after about one and a half of them.", "30s", default=KEEPALIVE),
        "tls": param({
            "type": "object", "additionalProperties": False,
            "properties": {
                "ca_file": {"type": "string", "description": "PEM file of the CAs to trust (default: the system's)."},
                "cert_file": {"type": "string", "description": "PEM client certificate, for brokers that ask for one."},
                "key_file": {"type": "string", "description": "PEM key of `cert_file` (when not in it)."},
                "insecure_skip_verify": {"type": "boolean",
                                         "description": "Accept any certificate and host name: tests only."},
            }},
            "TLS, also for `mqtt://` URLs (`mqtts://` turns it on with the defaults).",
            {"ca_file": "certs/ca.pem"}),
    }


MQTT_READ: Final = NodeSpec(
    name="mqtt.read",
    kind=SOURCE,
    since=2,  # introduced with format 2, whose `edge: {durable: true}` makes its delivery at-least-once
    summary="Subscribes to MQTT topics: each message is an event (a JSON object, or "
            "`{\"payload\": text}`). QoS 1 messages are acknowledged (PUBACK) only once the graph "
            "has taken them (committed them, when the output edge is durable); with a persistent "
            "session the broker keeps what arrives while the graph is down. See "
            "[Connectors](connectors.md#mqtt).",
    params=params_schema({
        **broker_params("Session identity at the broker; a persistent session (`clean_session: false`) "
                        "needs the same one at every start. Default: `headrace-GRAPH-NODE`, or one "
                        "the broker picks with a clean session."),
        "topic": param({"oneOf": [TOPIC_FILTER, {"type": "array", "items": TOPIC_FILTER, "minItems": 1}]},
                       "Topic filter, or a list of them; `+` and `#` wildcards allowed.", "sensors/+/reading"),
        "qos": param({"enum": [0, 1]},
                     "1: at least once (acknowledged after the graph took the message); "
                     "0: at most once.", 0, default=1),
        "clean_session": param({"type": "boolean"},
                               "false: a persistent session — the broker keeps the subscription and "
                               "queues QoS 1 messages while the graph is down.", True, default=False),
        "session_expiry": param(DURATION, "MQTT 5: how long the broker keeps a persistent session "
                                "after a disconnect (default: for ever, as 3.1.1 does).", "7d"),
        "format": param({"enum": [JSON, TEXT]},
                        "json: the payload is a JSON object, the event; text: the event is "
                        "`{\"payload\": \"...\"}`.", TEXT, default=JSON),
        "topic_field": param(FIELD, "Put the topic each message came on into this field.", "topic"),
        "batch_size": param({"type": "integer", "minimum": 1, "maximum": 65535},
                            "The most messages one read hands to the graph.", 1000, default=READ_BATCH),
        "max_inflight": param({"type": "integer", "minimum": 1, "maximum": 65535},
                              "The most messages waiting here for the graph (and the MQTT 5 Receive "
                              "Maximum): beyond it the node stops reading the connection and the "
                              "broker keeps the rest.",
                              2000, default=READ_INFLIGHT),
    }, required=("url", "topic")),
    factory=make_mqtt_read,
    parse=parse_mqtt_read,
    secrets=SECRETS,
    acknowledges=True,  # PUBACK in handed_on(): engine validate warns without a durable output edge
    example="type: mqtt.read\nwith: {url: \"mqtt://broker:1883\", topic: \"sensors/+/reading\", qos: 1, "
            "client_id: headrace-sensors, clean_session: false, topic_field: topic}",
)

MQTT_WRITE: Final = NodeSpec(
    name="mqtt.write",
    kind=SINK,
    since=2,  # introduced with format 2
    summary="Publishes each event as one MQTT message (JSON, or the `payload` field as text). With "
            "QoS 1 a batch is done once the broker has acknowledged every message of it. See "
            "[Connectors](connectors.md#mqtt).",
    params=params_schema({
        **broker_params("Client identifier; default: one the broker picks."),
        "topic": param(TOPIC_NAME, "Topic to publish to (no wildcards); events with `topic_field` "
                       "set go to their own.", "alerts/high"),
        "qos": param({"enum": [0, 1]}, "1: each message waits for the broker's PUBACK (at least once); "
                     "0: sent and not acknowledged.", 0, default=1),
        "retain": param({"type": "boolean"}, "Ask the broker to keep the last message of each topic for "
                        "new subscribers.", True, default=False),
        "format": param({"enum": [JSON, TEXT]},
                        "json: the event as a JSON object; text: the event's `payload` field as text.",
                        TEXT, default=JSON),
        "topic_field": param(FIELD, "Publish each event to the topic in this field (left out of the "
                             "payload); `topic` where it is missing.", "topic"),
        "max_inflight": param({"type": "integer", "minimum": 1, "maximum": 65535},
                              "QoS 1 messages sent before their PUBACKs come back.", 500,
                              default=WRITE_INFLIGHT),
        "timeout": param(DURATION, "How long a message waits for its PUBACK before the connection is "
                         "taken as lost and the batch is published again.", "30s", default=PUBLISH_TIMEOUT),
    }, required=("url", "topic")),
    factory=make_mqtt_write,
    parse=parse_mqtt_write,
    secrets=SECRETS,
    example="type: mqtt.write\nfrom: alerts\nwith: {url: \"mqtts://broker:8883\", topic: alerts/high, qos: 1, "
            "retain: false}",
)

SPECS: Final[tuple[NodeSpec, ...]] = (MQTT_READ, MQTT_WRITE)
