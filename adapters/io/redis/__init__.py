"""Redis Streams: `redis.read` and `redis.write` (docs/connectors.md). redis-py."""

from adapters.io.redis.specs import SPECS

__all__ = ["SPECS"]
