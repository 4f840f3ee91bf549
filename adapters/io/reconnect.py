"""A connector's connection to its system: its state for the stats, and reconnecting after a
lost connection with capped exponential backoff and jitter.

A connector tells permanent problems (a wrong password, an unknown table or stream: nothing
will change by waiting) from transient ones (a refused or dropped connection, a timeout, a
server restarting). A permanent one is a `NodeFailure` at once, one line naming the node; a
transient one is retried until it passes or the graph stops, and `engine ctl status` and
the stats show `connection: reconnecting` with the count.

Written here rather than with tenacity (as `http.post`'s retries are): the jitter comes from
the node's seeded random generator, so tests and `engine test` stay deterministic, the
state must be readable by the stats between attempts, and a stop of the graph must end the
wait at once; wrapping tenacity for those three would be longer than the loop itself.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from engine.node import NodeContext, NodeFailure

T = TypeVar("T")

CONNECTING: Final = "connecting"
CONNECTED: Final = "connected"
RECONNECTING: Final = "reconnecting"
CLOSED: Final = "closed"
FIRST_WAIT_S: Final = 0.1
MAX_WAIT_S: Final = 30.0


class Link:
    """The state of one connection, and `call`, which runs an operation on it and reconnects
    (then runs it again) while the error is transient."""

    def __init__(self, ctx: NodeContext, classify: Callable[[BaseException], str | None],
                 first_wait_s: float = FIRST_WAIT_S, max_wait_s: float = MAX_WAIT_S) -> None:
        """`classify(error)`: None for a transient error, else the line saying what is wrong
        and how to fix it (a permanent one)."""
        self.ctx = ctx
        self.classify = classify
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.state = CONNECTING
        self.reconnects = 0
        self.last_error = ""
        self.stopping = False

    def health(self) -> dict[str, object]:
        return {"connection": self.state, "reconnects": self.reconnects, "last_error": self.last_error}

    def failure(self, error: BaseException) -> NodeFailure:
        return NodeFailure(f"node '{self.ctx.name}': {self.classify(error) or _describe(error)}")

    async def call(self, operation: Callable[[], Awaitable[T]], connect: Callable[[], Awaitable[None]]) -> T:
        """`operation()`, reconnecting with `connect()` after each transient failure (of
        either) until it succeeds, or raising NodeFailure for a permanent one or a stop."""
        attempt = 0
        while True:
            try:
                if self.state != CONNECTED:
                    await connect()
                    self.state = CONNECTED
                return await operation()
            except asyncio.CancelledError:
                raise
            except NodeFailure:
                raise
            except Exception as error:
                if self.classify(error) is not None or self.stopping:
                    self.state = CLOSED
                    raise self.failure(error) from None
                self.state = RECONNECTING
                self.reconnects += 1
                self.last_error = _describe(error)
                await asyncio.sleep(self.wait_s(attempt))
                attempt += 1

    def wait_s(self, attempt: int) -> float:
        """A capped exponential, each wait drawn between its half and its whole: a restarting
        server is not met by every client at the same instant."""
        ceiling = min(self.max_wait_s, self.first_wait_s * (2 ** min(attempt, 30)))
        return float(ceiling * (0.5 + 0.5 * self.ctx.rng.random()))


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
