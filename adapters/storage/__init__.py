"""Where durable edges keep their events: LMDB (docs/edges.md)."""
