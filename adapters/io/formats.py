"""Record encodings shared by file and stdio nodes: JSON Lines, CSV, plain lines."""

import csv
import io
import json
from typing import Final

from engine.node import Event

JSONL: Final = "jsonl"
CSV: Final = "csv"
LINES: Final = "lines"


class BadRecord:
    """A record that could not be decoded: its line number, what was wrong, and the raw
    text (which only ever travels inside a dead-letter event, never into a log)."""

    def __init__(self, line_number: int, problem: str, raw: str) -> None:
        self.line_number = line_number
        self.problem = problem
        self.raw = raw

    def message(self) -> str:
        return f"line {self.line_number}: {self.problem}"


def decode_jsonl(line: str, number: int) -> Event | BadRecord | None:
    text = line.strip()
    if not text:
        return None  # blank lines are not records
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadRecord(number, f"invalid JSON ({exc.msg} at column {exc.colno})", text)
    except RecursionError:
        return BadRecord(number, "invalid JSON (nested too deeply)", text[:200])
    if not isinstance(value, dict):
        return BadRecord(number, f"expected a JSON object, got {type(value).__name__}", text)
    return value


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return value


class CsvEncoder:
    """CSV with a header row taken from the first event (or from the existing file when
    appending). Later events are written in that column order; missing fields are empty,
    extra fields are left out."""

    def __init__(self, header: list[str] | None = None) -> None:
        self.header = header

    def encode(self, events: list[Event]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.header is None and events:
            self.header = list(events[0])
            writer.writerow(self.header)
        header = self.header or []
        for event in events:
            writer.writerow([_csv_value(event.get(name)) for name in header])
        return buffer.getvalue()


def existing_csv_header(path: str) -> list[str] | None:
    """The header row of a non-empty CSV file, or None."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            first = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError):
        return None
    return [name.strip() for name in first] if first else None
