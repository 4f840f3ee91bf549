"""`Tap`: a rate-limited sample of the events crossing one edge, secret fields masked.

The observer runs inside the scheduler, so it only copies: each sampled event becomes its
JSON text at once (a later node may change the event in place), into a small queue the
stream reads. Anything over the rate, or over the queue while the client is slow, is
skipped; a tap never slows the graph down or holds events.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

from adapters.serve.running import RUNNING, RunningGraph
from engine.node import Batch, Event

MASK: Final = "****"
QUEUE: Final = 256


def masked(event: Event, secrets: tuple[str, ...]) -> Event:
    if not secrets:
        return event
    return {k: (MASK if k in secrets else v) for k, v in event.items()}


class TapStream:
    def __init__(self, running: RunningGraph, edge: str, per_second: float) -> None:
        self.running = running
        self.edge = edge
        self.interval = 1.0 / max(per_second, 0.001)
        self.next_at = 0.0
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        running.runtime.controls.tap(edge, self.observe)

    def observe(self, events: Batch) -> bool:
        """Samples at most one event per interval; False once it wants no more of this batch
        (so a fused chain stops calling it event by event)."""
        # Read each time: a reload may declare a new secret field while the tap stays open.
        secrets = self.running.plan.secret_fields
        now = time.monotonic()
        for event in events:
            if now < self.next_at or self.queue.full():
                return False
            self.next_at = now + self.interval
            self.queue.put_nowait(json.dumps(masked(event, secrets), default=str, separators=(",", ":")))
        return False  # the next one is due later than anything in this batch

    async def events(self, still_current: Callable[[], bool]) -> AsyncIterator[str]:
        """Sampled events until the graph is swapped, removed or stops."""
        while still_current() and self.running.state == RUNNING:
            try:
                yield await asyncio.wait_for(self.queue.get(), timeout=0.25)
            except TimeoutError:
                continue

    def close(self) -> None:
        self.running.runtime.controls.untap(self.edge, self.observe)
