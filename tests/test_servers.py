"""The real servers of tests/servers.py: each starts, answers a real client, and keeps what it
acknowledged across a restart in place (same port, same data)."""

import queue
import socket
import threading
from typing import Any

import psycopg
import pytest
import redis

from tests.servers import (
    HOST,
    MosquittoServer,
    NatsServer,
    PostgresServer,
    RedisServer,
    ServerError,
    find_program,
    run_async,
)

# -- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_keeps_committed_rows_across_restart_and_kill(postgres_server: PostgresServer):
    server = postgres_server
    assert server.dsn == f"postgresql://headrace:secret@127.0.0.1:{server.port}/headrace"
    with psycopg.connect(server.dsn) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO events VALUES (1, 'before restart')")
    port = server.port
    server.restart()
    assert server.port == port
    with server.connect() as conn:
        assert conn.execute("SELECT body FROM events").fetchall() == [("before restart",)]
        conn.execute("INSERT INTO events VALUES (2, 'before kill')")
    server.kill()
    assert not server.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn, connect_timeout=2)
    server.start()  # crash recovery from the WAL
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)


def test_postgres_wants_the_password(postgres_server: PostgresServer):
    wrong = postgres_server.dsn.replace(":secret@", ":wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


# -- Redis -----------------------------------------------------------------------------------


def test_redis_stream_survives_restart_and_kill(redis_server: RedisServer):
    server = redis_server
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = redis.Redis.from_url(server.url)
    first = client.xadd("events", {"n": "1"})
    server.restart()
    client = redis.Redis.from_url(server.url)
    second = client.xadd("events", {"n": "2"})
    server.kill()  # appendfsync always: an acknowledged XADD is on disk
    server.start()
    client = redis.Redis.from_url(server.url)
    assert [entry_id for entry_id, _ in client.xrange("events")] == [first, second]
    assert client.xrange("events")[0][1] == {b"n": b"1"}


def test_redis_password(tmp_path):
    with RedisServer(tmp_path, password="pw") as server:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(server.url).ping()
        assert server.client().ping()


# -- NATS JetStream ----------------------------------------------------------------------------


def test_jetstream_keeps_acknowledged_messages_across_restart(nats_server: NatsServer):
    server = nats_server
    assert server.url == f"nats://127.0.0.1:{server.port}"

    async def publish() -> int:
        nc = await server.connect()
        js = nc.jetstream()
        await js.add_stream(name="EVENTS", subjects=["events.>"])  # file storage
        ack = await js.publish("events.a", b"one")
        info = await js.stream_info("EVENTS")
        await nc.close()
        assert info.state.messages == 1
        return int(ack.seq)

    async def read() -> tuple[int, bytes]:
        nc = await server.connect()
        js = nc.jetstream()
        info = await js.stream_info("EVENTS")
        message = await js.get_msg("EVENTS", 1)
        await nc.close()
        return int(info.state.messages), bytes(message.data or b"")

    assert run_async(publish) == 1
    server.restart()
    assert run_async(read) == (1, b"one")


def test_nats_credentials(tmp_path):
    with NatsServer(tmp_path, user="u", password="p") as server:
        async def anonymous() -> None:
            import nats
            await nats.connect(server.url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
        with pytest.raises(Exception, match=r"(?i)authorization"):
            run_async(anonymous)


# -- MQTT ------------------------------------------------------------------------------------


class Mqtt:
    """A paho client running on its own thread; messages land in `messages`."""

    def __init__(self, server: MosquittoServer, client_id: str = "", *, clean: bool = True) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = server.client(client_id, clean_session=clean)
        self.client.on_connect = lambda _c, _u, _f, code, _p: code.is_failure or self.connected.set()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.connect(HOST, server.port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)  # PUBACK

    def receive(self) -> tuple[str, bytes, bool]:
        message = self.messages.get(timeout=5)
        return message.topic, message.payload, bool(message.retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_qos1_and_persistence_across_restart(mqtt_server: MosquittoServer):
    server = mqtt_server
    assert server.url == f"mqtt://127.0.0.1:{server.port}"
    keeper = Mqtt(server, "keeper", clean=False)  # a persistent session
    keeper.subscribe("queue/#")
    publisher = Mqtt(server)
    publisher.publish("queue/a", b"live")
    assert keeper.receive() == ("queue/a", b"live", False)
    keeper.close()
    publisher.publish("queue/a", b"queued while away")
    publisher.publish("status", b"retained", retain=True)
    publisher.close()

    server.restart()
    keeper = Mqtt(server, "keeper", clean=False)
    assert keeper.receive() == ("queue/a", b"queued while away", False)
    keeper.close()
    late = Mqtt(server)
    late.subscribe("status")
    assert late.receive() == ("status", b"retained", True)
    late.close()


def test_mqtt_bad_credentials_are_refused(tmp_path):
    with MosquittoServer(tmp_path, users={"user": "right"}) as server:
        client = server.client()
        client.username_pw_set("user", "wrong")
        codes: list[Any] = []
        client.on_connect = lambda _c, _u, _f, code, _p: codes.append(code)
        client.connect(HOST, server.port)
        for _ in range(100):
            if codes:
                break
            client.loop(timeout=0.05)
        assert codes and codes[0].is_failure, codes


# -- the harness itself ----------------------------------------------------------------------


def test_a_missing_program_skips(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-server is not installed"):
        find_program("no-such-server")


def test_a_server_that_cannot_start_shows_its_log(tmp_path):
    find_program("redis-server")
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        server = RedisServer(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(ServerError, match=r"(?s)exited with code.*redis.log ends:.*in use"):
            server.start()
    assert not server.running
