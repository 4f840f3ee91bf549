"""Connectors: the node types that read or write the outside world, one module or package
each (files and standard streams, HTTP, PostgreSQL, Redis Streams, NATS JetStream, MQTT).

The contract a connector implements (docs/connectors.md, "Adding a connector"):

- **Specs.** The module (or package) has `SPECS`, a tuple of `engine.spec.NodeSpec`: the
  parameters as JSON Schema, `parse` (parameters to a settings object) and `factory`.
  Specs import nothing heavy: the client library is imported by the factory, when a graph
  runs the node, so `engine validate` and `engine plan` work without it; a missing library
  is one line naming the extra to install (`adapters.io.client.require`).
- **Source.** A subclass of `engine.node.AsyncSource`: `open` connects (a permanent
  problem — a wrong password, an unknown table — raises `NodeFailure` with one line);
  `read` fetches at most one batch, and is not called again while the output edge is full,
  so nothing buffers without bound; `position`/`resume` give its resumable place.
- **Acknowledgements.** `handed_on()` is called once every event of the last `read` is on
  the output edges — committed to LMDB when the edge is `durable: true`. A source
  acknowledges to its system there (XACK, a JetStream ack, ...): at-least-once end to end
  with a durable output edge, at-most-once across a crash without one.
- **Sink.** A subclass of `engine.node.AsyncSink`: `write` returns once the batch is
  flushed (the input edge acknowledges it then); a row the system refuses goes to
  `give_up` (the node's `on_error`); `close` flushes and releases.
- **Catalog.** One line in `adapters/io/catalog.py` registers the module's `SPECS`.
"""
