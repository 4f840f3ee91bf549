"""A test-only connector, `test.linked`: an IO source whose connection comes and goes, with a
secret `url`, for the tests of connection health (stats, `engine ctl status`, /metrics), of
secret masking and of the at-most-once warning. No system behind it: the tests of the real
connectors use real servers (tests/servers.py)."""

import asyncio

from engine.node import AsyncSource, Batch, Failures, NodeContext, NodeFailure
from engine.spec import SOURCE, NodeSpec, param, params_schema

CONNECTED = "connected"
RECONNECTING = "reconnecting"


class Linked(AsyncSource):
    """Emits `{"i": n}`, one event per read, `count` of them (0: until stopped). After
    `lose_after` reads (0: never) the connection is lost: every later read emits nothing,
    counts a reconnect and keeps the error, which names the URL (its password included, as
    a careless connector would: the runtime masks it). `refuse` fails `open` the same way."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = ctx.params
        assert isinstance(params, dict)
        self.url = str(params["url"])
        self.count = int(params.get("count", 0))
        self.lose_after = int(params.get("lose_after", 0))
        self.refuse = bool(params.get("refuse", False))
        self.interval_s = float(params.get("interval_ms", 5)) / 1000
        self.reads = 0
        self.state = "connecting"
        self.reconnects = 0
        self.last_error = ""
        self.acknowledged = 0

    async def open(self) -> None:
        if self.refuse:
            raise NodeFailure(f"node '{self.ctx.name}': cannot connect to {self.url}: authentication failed")
        self.state = CONNECTED

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        await asyncio.sleep(self.interval_s)
        self.reads += 1
        if self.lose_after and self.reads > self.lose_after:
            self.state = RECONNECTING
            self.reconnects += 1
            self.last_error = f"ConnectionError: {self.url} closed the connection"
            return True
        outs[0].append({"i": self.reads})
        return not self.count or self.reads < self.count

    def handed_on(self) -> None:
        self.acknowledged = self.reads

    def health(self) -> dict[str, object]:
        return {"connection": self.state, "reconnects": self.reconnects, "last_error": self.last_error}


def as_mapping(raw: dict[str, object]) -> dict[str, object]:
    return raw


LINKED = NodeSpec(
    name="test.linked", kind=SOURCE, summary="test node test.linked",
    params=params_schema({
        "url": param({"type": "string"}, "where it pretends to connect", "redis://:pw@localhost:6379"),
        "count": param({"type": "integer"}, "events, 0: until stopped", 10),
        "lose_after": param({"type": "integer"}, "reads before the connection is lost, 0: never", 3),
        "refuse": param({"type": "boolean"}, "open fails, naming the url", True),
        "interval_ms": param({"type": "integer"}, "wait per read", 5),
    }, required=("url",)),
    factory=Linked, parse=as_mapping, secrets=("url",), acknowledges=True,
)
