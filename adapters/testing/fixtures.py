"""What a test feeds its sources and how a test run captures what comes out.

A fixture source emits its events on the scheduler's loop and a capture sink keeps what it
receives: with no IO task left, the virtual clock can jump straight to the next timer.
"""

from pathlib import Path
from typing import Final

import orjson

from adapters.io.files.line_reader import LineReader
from adapters.io.formats import CSV, JSONL, LINES, BadRecord
from engine.node import Batch, Event, Failures, NodeContext, Source, Transform

FIXTURE_FORMATS: Final = {".jsonl": JSONL, ".ndjson": JSONL, ".json": JSONL, ".csv": CSV}


class FixtureError(Exception):
    """A fixture file that cannot be read, or a line in it that is not an event."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_fixture(path: Path) -> list[Event]:
    """The events of a JSON Lines, CSV or lines file (by extension), as `file.read` reads them."""
    fmt = FIXTURE_FORMATS.get(path.suffix.lower(), LINES)
    if path.suffix.lower() == ".json":
        array = _json_array(path)
        if array is not None:
            return array
    events: list[Event] = []
    try:
        with path.open("rb") as stream:
            for chunk in LineReader(stream, fmt, str(path)).chunks():
                if chunk.failure:
                    raise FixtureError(chunk.failure)
                records, _ = chunk.decoded()
                for record in records:
                    if isinstance(record, BadRecord):
                        raise FixtureError(record.problem, record.line_number)
                    events.append(record)
    except OSError as exc:
        raise FixtureError(f"cannot read {path}: {exc.strerror or exc}") from None
    return events


def _json_array(path: Path) -> list[Event] | None:
    """A `.json` fixture holding one array of events (else it is read as JSON Lines)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.lstrip().startswith(b"["):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FixtureError(f"invalid JSON ({exc})") from None
    for index, event in enumerate(value):
        if not isinstance(event, dict):
            raise FixtureError(f"item {index + 1} of the array is not an event (a JSON object)")
    return list(value)


def frozen_copy(events: Batch) -> list[Event]:
    """Events as a JSON Lines sink would write them, so later changes by a node cannot
    change what was captured and expectations compare plain JSON values."""
    return [orjson.loads(orjson.dumps(e, default=str, option=orjson.OPT_NON_STR_KEYS)) for e in events]


class FixtureSource(Source):
    """A source whose events are the test's: all at once, a budget at a time, or one every
    `every_s` seconds of the test's virtual clock (starting with the first at once)."""

    def __init__(self, ctx: NodeContext, events: list[Event], every_s: float = 0.0) -> None:
        super().__init__(ctx)
        self.events = events
        self.every_s = every_s
        self.at = 0
        self.next_at = 0.0  # paced: when the next event is due (0: the first poll)

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        end = min(len(self.events), self.at + budget)
        if self.every_s > 0:
            if self.next_at == 0.0:
                self.next_at = now
            end = min(end, self.at + 1) if self.next_at <= now else self.at
            if end > self.at:
                self.next_at += self.every_s
        if outs:
            # Fresh copies: a fused map may change the events it is handed in place.
            outs[0].extend(dict(e) for e in self.events[self.at:end])
        self.at = end
        return self.at < len(self.events)

    def deadline(self) -> float:
        return self.next_at if self.every_s > 0 else 0.0

    def position(self) -> str:
        return str(self.at)

    def resume(self, position: str) -> None:
        self.at = int(position) if position.isdigit() else 0


class CaptureSink(Transform):
    """A sink's stand-in: keeps what the sink would have written, touches nothing outside."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.received: list[Event] = []

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        self.received.extend(frozen_copy(batch))
        return len(batch)
