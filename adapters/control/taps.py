"""`Tap`: the events crossing one edge, secret fields masked: a rate-limited sample, or every
event (for `engine ctl tap --save`).

The observer runs inside the scheduler, so it only copies: each kept event becomes its JSON
text at once (a later node may change the event in place), into a queue the stream reads.
A sample skips anything over the rate, or over its small queue while the client is slow; a
tap never slows the graph down or holds events. A tap of every event keeps up to its limit
waiting (at most SAVE_QUEUE); past that it skips events too, and counts them, so the client
learns exactly how many it missed and where.
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
SAVE_QUEUE: Final = 65536  # events a tap of every event keeps waiting for a slow client

# What the stream reads: the events skipped just before this one, and its JSON text.
Tapped = tuple[int, str]


def masked(event: Event, secrets: tuple[str, ...]) -> Event:
    if not secrets:
        return event
    return {k: (MASK if k in secrets else v) for k, v in event.items()}


def _text(event: Event, secrets: tuple[str, ...]) -> str:
    return json.dumps(masked(event, secrets), default=str, separators=(",", ":"))


class TapStream:
    def __init__(self, running: RunningGraph, edge: str, per_second: float, every: bool = False,
                 limit: int = 0) -> None:
        self.running = running
        self.edge = edge
        self.interval = 1.0 / max(per_second, 0.001)
        self.next_at = 0.0
        self.left = limit if limit else -1  # events a tap of every event still keeps (-1: no limit)
        self.missed = 0  # skipped since the last kept event (every event: the queue was full)
        size = min(limit, SAVE_QUEUE) if every and limit else SAVE_QUEUE if every else QUEUE
        self.queue: asyncio.Queue[Tapped] = asyncio.Queue(size)
        self.observer = self.keep_every if every else self.observe
        running.runtime.controls.tap(edge, self.observer)

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
            self.queue.put_nowait((0, _text(event, secrets)))
        return False  # the next one is due later than anything in this batch

    def keep_every(self, events: Batch) -> bool:
        """Keeps each event, in order, until the limit; one that finds the queue full is
        counted, not kept. False once the limit is reached (nothing more is wanted)."""
        secrets = self.running.plan.secret_fields
        queue = self.queue
        for event in events:
            if self.left == 0:
                return False
            if queue.full():
                self.missed += 1
                continue
            queue.put_nowait((self.missed, _text(event, secrets)))
            self.missed = 0
            self.left -= 1
        return self.left != 0

    async def events(self, still_current: Callable[[], bool]) -> AsyncIterator[Tapped]:
        """Kept events until the graph is swapped, removed or stops; then the ones still
        waiting, which crossed the edge before it did."""
        queue = self.queue
        while still_current() and self.running.state == RUNNING:
            if not queue.empty():
                yield queue.get_nowait()
                continue
            try:
                yield await asyncio.wait_for(queue.get(), timeout=0.25)
            except TimeoutError:
                continue
        for _ in range(queue.qsize()):
            yield queue.get_nowait()

    def close(self) -> None:
        self.running.runtime.controls.untap(self.edge, self.observer)
