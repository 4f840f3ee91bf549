"""The parameters of `mqtt.read` and `mqtt.write`, apart from their nodes so that reading a
graph never loads aiomqtt (the nodes import it when a graph runs them)."""

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from engine.durations import duration_ms
from engine.params import Raw, flag, mapping, text_of, texts, whole

JSON: Final = "json"
TEXT: Final = "text"
V5: Final = "5"
V311: Final = "3.1.1"
READ_BATCH: Final = 500
READ_INFLIGHT: Final = 1000  # two batches: the next one arrives while the last is committed
WRITE_INFLIGHT: Final = 100
KEEPALIVE: Final = "60s"
PUBLISH_TIMEOUT: Final = "10s"
NEVER_EXPIRES: Final = 0xFFFFFFFF  # MQTT 5's Session Expiry Interval meaning "never"
SCHEMES: Final = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


@dataclass(frozen=True)
class Tls:
    enabled: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class Broker:
    """Where and how to connect; shared by both node types."""

    url: str
    username: str = ""  # from `username`, else the URL's user
    password: str = ""
    client_id: str = ""
    protocol: str = V5
    keepalive: str = KEEPALIVE
    tls: Tls = Tls()


@dataclass(frozen=True)
class MqttReadParams:
    broker: Broker
    topics: tuple[str, ...]
    qos: int = 1
    clean_session: bool = False
    session_expiry: str = ""  # "" : never (as an MQTT 3.1.1 persistent session)
    format: str = JSON
    topic_field: str = ""
    batch_size: int = READ_BATCH
    max_inflight: int = READ_INFLIGHT


@dataclass(frozen=True)
class MqttWriteParams:
    broker: Broker
    topic: str = ""
    qos: int = 1
    retain: bool = False
    format: str = JSON
    topic_field: str = ""
    max_inflight: int = WRITE_INFLIGHT
    timeout: str = PUBLISH_TIMEOUT


class Address:
    """A broker URL taken apart: `mqtt://user:password@host:1883`, `mqtts://` for TLS."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        self.tls, default_port = SCHEMES.get(self.scheme, (False, 1883))
        self.host = parts.hostname or ""
        try:
            self.port = parts.port or default_port
        except ValueError:
            self.port = 0
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")

    def problem(self) -> str:
        """What is wrong with the URL, '' when nothing; never quotes the URL (a password)."""
        if self.scheme not in SCHEMES:
            return f"`url` must start with one of {', '.join(s + '://' for s in SCHEMES)}"
        if not self.host:
            return "`url` names no host"
        if not self.port:
            return "`url` has an invalid port"
        return ""

    def shown(self) -> str:
        """host:port, what logs and errors say instead of the URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def seconds(duration: str, fallback: str) -> float:
    return (duration_ms(duration) or duration_ms(fallback) or 0) / 1000.0


def parse_tls(raw: Raw, url: str) -> Tls:
    block = mapping(raw, "tls") or {}
    return Tls(enabled=Address(url).tls or bool(block), ca_file=text_of(block, "ca_file"),
               cert_file=text_of(block, "cert_file"), key_file=text_of(block, "key_file"),
               insecure_skip_verify=flag(block, "insecure_skip_verify"))


def parse_broker(raw: Raw) -> Broker:
    url = text_of(raw, "url")
    address = Address(url)
    return Broker(url=url, username=text_of(raw, "username", address.username),
                  password=text_of(raw, "password", address.password), client_id=text_of(raw, "client_id"),
                  protocol=text_of(raw, "protocol", V5), keepalive=text_of(raw, "keepalive", KEEPALIVE),
                  tls=parse_tls(raw, url))


def parse_mqtt_read(raw: Raw) -> MqttReadParams:
    topic = raw.get("topic")
    topics = (topic,) if isinstance(topic, str) else texts(raw, "topic")
    return MqttReadParams(
        parse_broker(raw), topics, whole(raw, "qos", 1), flag(raw, "clean_session", False),
        text_of(raw, "session_expiry"), text_of(raw, "format", JSON), text_of(raw, "topic_field"),
        whole(raw, "batch_size", READ_BATCH), whole(raw, "max_inflight", READ_INFLIGHT))


def parse_mqtt_write(raw: Raw) -> MqttWriteParams:
    return MqttWriteParams(
        parse_broker(raw), text_of(raw, "topic"), whole(raw, "qos", 1), flag(raw, "retain", False),
        text_of(raw, "format", JSON), text_of(raw, "topic_field"), whole(raw, "max_inflight", WRITE_INFLIGHT),
        text_of(raw, "timeout", PUBLISH_TIMEOUT))
