"""Reading a JSON Lines output that a killed process appended to, as it grows."""

import json
from pathlib import Path


class Output:
    """Every `key` value written to `path`, in file order, read incrementally; the distinct
    ones; and how many lines a kill tore (cut in the middle of a write, then continued by
    the next run's first line)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.offset = 0
        self.rest = b""  # an unfinished last line
        self.values: list[int] = []
        self.seen: set[int] = set()
        self.events: list[dict[str, object]] = []
        self.torn = 0

    def done(self) -> int:
        """How many distinct values are written so far."""
        if self.path.exists():
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
            self.offset += len(data)
            *lines, self.rest = (self.rest + data).split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    self.torn += 1
                    continue
                self.events.append(event)
                self.values.append(event[self.key])
                self.seen.add(event[self.key])
        return len(self.seen)

    def duplicates(self) -> int:
        return len(self.values) - len(self.seen)
