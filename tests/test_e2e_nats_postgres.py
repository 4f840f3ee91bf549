"""End to end, across two `kill -9`: a JetStream stream of 20,000 JSON orders flows through
`nats.read` -> [durable edge] -> `map` -> `postgres.write` (upsert on the order id) with
real nats-server and PostgreSQL servers. `engine run` is killed with SIGKILL twice while it
runs and started again; the table ends with exactly the 20,000 orders, each with the values
the map computed: nothing lost (at-least-once) and nothing doubled (the upsert)."""

from pathlib import Path

from tests.servers import NatsServer, PostgresServer
from tests.test_nats import consumer, kill_9_when, make_stream, publish, run_then_stop

COUNT = 20_000
GRAPH = """version: 2
nodes:
  orders:
    type: nats.read
    with: {{servers: "{nats}", stream: ORDERS, subject: "orders.>", durable: to_postgres, batch_size: 500,
            ack_wait: 2s}}
  priced:
    type: map
    from: {{node: orders, edge: {{durable: true, capacity: 2000}}}}
    with: {{set: {{id: i, qty: i % 7 + 1, total: (i % 7 + 1) * 2.5}}}}
  stored:
    type: postgres.write
    from: priced
    with: {{dsn: "{dsn}", table: orders, mode: upsert, key: [id], columns: [id, qty, total], batch_size: 500}}
"""


def rows(server: PostgresServer) -> int:
    with server.connect() as conn:
        return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])


def test_kill_9_twice_leaves_exactly_every_order_in_postgres(nats_server: NatsServer,
                                                              postgres_server: PostgresServer, tmp_path: Path):
    with postgres_server.connect() as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, qty int NOT NULL, total double precision)")
    make_stream(nats_server)
    publish(nats_server, COUNT)
    (tmp_path / "g.yaml").write_text(GRAPH.format(nats=nats_server.url, dsn=postgres_server.dsn))
    for share in (2_000, 9_000):  # two kills, at different points of the stream
        kill_9_when(tmp_path, lambda share=share: rows(postgres_server) >= share)
        assert rows(postgres_server) < COUNT  # killed mid-stream
    def settled() -> bool:
        """Every order stored, and no message out with the engine (what the killed runs had
        read comes back after `ack_wait`, possibly after the last order is stored)."""
        if rows(postgres_server) < COUNT:
            return False
        info = consumer(nats_server, "to_postgres")
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)
    run_then_stop(tmp_path, settled, timeout=120)
    with postgres_server.connect() as conn:
        count, low, high, qty, total = conn.execute(
            "SELECT count(*), min(id), max(id), sum(qty), sum(total) FROM orders").fetchone()
    expected_qty = sum(i % 7 + 1 for i in range(COUNT))
    assert (count, low, high, qty) == (COUNT, 0, COUNT - 1, expected_qty)
    assert total == expected_qty * 2.5
