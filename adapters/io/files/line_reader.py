"""The records of a byte stream, as chunks that each say how far into the stream they reach.

`LineReader.chunks` is a plain generator: `file.read` of a regular file runs it on the
event loop's thread (reading a block from the page cache costs less than handing it over
between threads); `stdin` and `follow` run it in a thread, since their reads wait.
JSON Lines chunks carry their lines undecoded: the consumer decodes them where it runs.
"""

import os
import time
from collections.abc import Iterator
from typing import BinaryIO, Final

from adapters.fast_json import decode_jsonl_lines, has_long_digits, line_text
from adapters.io.files.csv_lines import CsvRows
from adapters.io.files.line_blocks import LineBlocks, LineGroup, OversizeLine
from adapters.io.formats import CSV, JSONL, BadRecord
from engine.node import Event

FOLLOW_POLL_S: Final = 0.2
MAX_LINE_BYTES: Final = 16 << 20

Record = Event | BadRecord


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
    """Reads blocks of lines (tailing the file when `follow`) and makes a chunk of each group."""

    def __init__(self, stream: BinaryIO, fmt: str, path: str = "", follow: bool = False,
                 start: tuple[int, int] = (0, 0), max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.stream = stream
        self.format = fmt
        self.path = path
        self.max_line_bytes = max_line_bytes
        # Resuming: the byte offset and line count to continue from (a CSV header is read
        # first, then the file is read on from the offset).
        self.resume_at = start
        self.done_bytes = 0
        self.lines_read = 0
        self.stopped = False
        self.blocks = LineBlocks(stream, max_line_bytes, follow, has_long_digits if fmt == JSONL else None)
        self.csv = CsvRows()

    def chunks(self) -> Iterator[Chunk]:
        try:
            self._resume()
            for group in self.blocks.groups():
                if isinstance(group, OversizeLine):
                    self.lines_read += 1
                    self.done_bytes += group.consumed
                    # A quoted CSV row still open takes the long line into it: the whole row
                    # is the bad record, and the offset moves past it.
                    opened = self.csv.drop_open_row()
                    yield self._chunk([self._oversize(group, opened or self.lines_read)])
                elif isinstance(group, LineGroup):
                    first = self.lines_read + 1
                    self.lines_read += len(group.lines)
                    self.done_bytes += group.size
                    if self.format == JSONL:  # decoded where the chunk is read
                        yield Chunk([], self.done_bytes, False, lines=self.lines_read, raw=group)
                    else:
                        yield self._chunk(self._decode(group, first))
                else:
                    self._wait()
            # The end: a CSV row still open at the last line ends with the file.
            records: list[Record] = []
            self.csv.decode("", [], self.lines_read + 1, records, True)
            yield Chunk(records, self.done_bytes, True, lines=self.lines_read)
        except OSError as exc:
            yield Chunk([], self.done_bytes, True, f"cannot read {self.path or 'stdin'}: {exc.strerror or exc}")

    def _chunk(self, records: list[Record]) -> Chunk:
        """The offset leaves out the lines of a CSV row still open (a quoted field spanning
        lines): a resumed read starts with them."""
        held_bytes, held_lines = self.csv.carried()
        return Chunk(records, self.done_bytes - held_bytes, False, lines=self.lines_read - held_lines)

    def _decode(self, group: LineGroup, first: int) -> list[Record]:
        text = b"\n".join(group.lines).decode("utf-8", errors="replace")
        if first == 1:
            text = text.removeprefix("\ufeff")
        if self.format != CSV:  # lines: each is `{"line": ...}`, without a carriage return
            return [{"line": line[:-1] if line.endswith("\r") else line} for line in text.split("\n")]
        records: list[Record] = []
        sizes = [len(raw) + 1 for raw in group.lines]
        if not group.complete:
            sizes[-1] -= 1
        self.csv.decode(text, sizes, first, records, not group.complete, group.complete)
        return records

    def _resume(self) -> None:
        """Seeks to where a resumed read continues; a CSV header is read first."""
        offset, lines = self.resume_at
        if offset <= 0:
            return
        if self.format == CSV:
            self.csv.take_header(line_text(self.stream.readline(), 1))
        self.stream.seek(offset)
        self.done_bytes, self.lines_read = offset, lines

    def _oversize(self, line: OversizeLine, number: int) -> BadRecord:
        return BadRecord(number, f"longer than max_line_bytes ({self.max_line_bytes} bytes)",
                         line.head.decode("utf-8", errors="replace"))

    def _wait(self) -> None:
        """Following, at the end of the file: wait, look again."""
        if self.stopped:
            raise Stopped()
        time.sleep(FOLLOW_POLL_S)
        if self._reopened():
            self.done_bytes = self.lines_read = 0
            self.blocks.restart(self.stream)
            self.csv = CsvRows()  # a new file: no row open, and its own header first

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
