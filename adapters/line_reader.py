"""The records of a byte stream, as chunks that each say how far into the stream they reach.

`LineReader.chunks` is a plain generator: `file.read` of a regular file runs it on the
event loop's thread (reading a block from the page cache costs less than handing it over
between threads); `stdin` and `follow` run it in a thread, since their reads wait.
JSON Lines chunks carry their lines undecoded: the consumer decodes them where it runs.
"""

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, Final

from adapters.fast_json import decode_jsonl_lines, has_long_digits, line_text
from adapters.formats import CSV, JSONL, BadRecord, decode_csv, decode_jsonl, decode_line
from adapters.line_blocks import LineBlocks, LineGroup, OversizeLine
from engine.node import Event

BATCH_SIZE: Final = 1024
FOLLOW_POLL_S: Final = 0.2
MAX_LINE_BYTES: Final = 16 << 20

Record = Event | BadRecord
Decoder = Callable[[Iterable[tuple[int, str]]], Iterator[Record]]


def _per_line(decode: Callable[[str, int], Event | BadRecord | None]) -> Decoder:
    def records(lines: Iterable[tuple[int, str]]) -> Iterator[Record]:
        for number, text in lines:
            record = decode(text, number)
            if record is not None:
                yield record
    return records


def decoder_for(fmt: str) -> Decoder:
    if fmt == CSV:
        return decode_csv
    return _per_line(decode_jsonl if fmt == JSONL else decode_line)


class Chunk:
    def __init__(self, records: list[Record], done_bytes: int, end: bool, failure: str = "", lines: int = 0,
                 raw: LineGroup | None = None) -> None:
        self.records = records
        self.done_bytes = done_bytes  # the byte offset just after these records
        self.end = end
        self.failure = failure
        self.lines = lines  # lines read up to that offset
        self.raw = raw  # JSON Lines still to decode: the last `len(raw.lines)` lines up to `lines`

    def decoded(self) -> tuple[list[Record], bool]:
        """The records, and whether any is bad."""
        if self.raw is None:
            return self.records, any(isinstance(r, BadRecord) for r in self.records)
        records: list[Record] = []
        bad = decode_jsonl_lines(self.raw.lines, self.lines - len(self.raw.lines), records, self.raw.flagged)
        return records, bad


class Stopped(Exception):
    """The node stopped while its reader waited for more."""


class LineReader:
    """Reads blocks of lines (tailing the file when `follow`) and makes chunks of them."""

    def __init__(self, stream: BinaryIO, fmt: str, path: str = "", follow: bool = False,
                 start: tuple[int, int] = (0, 0), max_line_bytes: int = MAX_LINE_BYTES,
                 hand_on: Callable[[Chunk], None] | None = None) -> None:
        self.stream = stream
        # Following: called with what is pending before waiting for the file to grow (a
        # per-line decoder cannot give up the records it made while it waits for a line).
        self.hand_on = hand_on
        self.format = fmt
        self.path = path
        self.max_line_bytes = max_line_bytes
        self.pending: list[Record] = []
        # Resuming: the byte offset and line count to continue from (a CSV header is read
        # first, then the file is read on from the offset).
        self.resume_at = start
        self.done_bytes = 0
        self.lines_read = 0
        self.stopped = False
        self.blocks = LineBlocks(stream, max_line_bytes, follow, has_long_digits if fmt == JSONL else None)

    def chunks(self) -> Iterator[Chunk]:
        try:
            header = self._resume()
            if self.format == JSONL:
                yield from self._jsonl()
            else:
                for record in decoder_for(self.format)(self._text_lines(header)):
                    self.pending.append(record)
                    if len(self.pending) >= BATCH_SIZE:
                        yield self._take_pending()
            records, self.pending = self.pending, []
            yield Chunk(records, self.done_bytes, True, lines=self.lines_read)
        except OSError as exc:
            yield Chunk([], self.done_bytes, True, f"cannot read {self.path or 'stdin'}: {exc.strerror or exc}")

    def _take_pending(self) -> Chunk:
        records, self.pending = self.pending, []
        return Chunk(records, self.done_bytes, False, lines=self.lines_read)

    def _resume(self) -> list[tuple[int, str]]:
        """Seeks to where a resumed read continues; returns the CSV header line to read first."""
        offset, lines = self.resume_at
        if offset <= 0:
            return []
        header = [(1, line_text(self.stream.readline(), 1))] if self.format == CSV else []
        self.stream.seek(offset)
        self.done_bytes, self.lines_read = offset, lines
        return header

    def _oversize(self, line: OversizeLine, number: int) -> BadRecord:
        return BadRecord(number, f"longer than max_line_bytes ({self.max_line_bytes} bytes)",
                         line.head.decode("utf-8", errors="replace"))

    def _jsonl(self) -> Iterator[Chunk]:
        """A chunk per group of lines, each with the offset after it."""
        for group in self.blocks.groups():
            if isinstance(group, OversizeLine):
                self.lines_read += 1
                self.done_bytes += group.consumed
                yield Chunk([self._oversize(group, self.lines_read)], self.done_bytes, False, lines=self.lines_read)
            elif isinstance(group, LineGroup):
                self.lines_read += len(group.lines)
                self.done_bytes += group.size
                yield Chunk([], self.done_bytes, False, lines=self.lines_read, raw=group)
            else:
                self._wait()

    def _text_lines(self, header: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        """Lines as text for the per-line decoders, newlines kept (a quoted CSV field may span lines)."""
        yield from header
        for group in self.blocks.groups():
            if isinstance(group, OversizeLine):
                self.lines_read += 1
                self.done_bytes += group.consumed
                self.pending.append(self._oversize(group, self.lines_read))
                continue
            if not isinstance(group, LineGroup):
                if self.pending and self.hand_on is not None:
                    self.hand_on(self._take_pending())
                self._wait()
                continue
            last = len(group.lines) - 1
            for index, raw in enumerate(group.lines):
                ends = group.complete or index < last
                self.lines_read += 1
                self.done_bytes += len(raw) + ends
                text = line_text(raw, self.lines_read)
                yield self.lines_read, text + "\n" if ends else text

    def _wait(self) -> None:
        """Following, at the end of the file: wait, look again."""
        if self.stopped:
            raise Stopped()
        time.sleep(FOLLOW_POLL_S)
        if self._reopened():
            self.done_bytes = self.lines_read = 0
            self.blocks.restart(self.stream)

    def _reopened(self) -> bool:
        """Follow mode: start over on truncation, switch files on rotation."""
        try:
            current = os.stat(self.path)
        except OSError:
            return False  # rotated away and not recreated yet: keep waiting
        here = os.fstat(self.stream.fileno())
        if current.st_ino != here.st_ino:
            self.stream.close()
            self.stream = open(self.path, "rb")  # noqa: SIM115 (read on until the node stops)
            return True
        if current.st_size < self.stream.tell():
            self.stream.seek(0)
            return True
        return False
