"""Lines of a byte stream, read in large blocks and handed on in groups.

Reading a block at a time and splitting it in C costs a fraction of a `readline` per line.
A group is at most `GROUP_LINES` complete lines with the number of bytes they span, so the
reader can say exactly how far it got after each group (a resumed read starts there).
A line longer than `max_line_bytes` is never held whole: it becomes an `OversizeLine`
carrying its first bytes, and the rest is skipped up to its newline.
"""

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final, cast

BLOCK_BYTES: Final = 1 << 20
GROUP_LINES: Final = 1024
# What a dead letter keeps of a line that was too long (or max_line_bytes, if smaller).
OVERSIZE_HEAD_BYTES: Final = 1024


class OversizeLine:
    def __init__(self, head: bytes, consumed: int) -> None:
        self.head = head
        self.consumed = consumed  # bytes of the stream it spans so far, its newline included


class LineGroup:
    def __init__(self, lines: list[bytes], size: int, complete: bool = True, flagged: bool = False) -> None:
        self.lines = lines  # without their newlines
        self.size = size  # bytes consumed, newlines included
        self.complete = complete  # False: the last line had no newline (the stream ended)
        self.flagged = flagged  # what `scan` said of the block these lines came from


Group = LineGroup | OversizeLine


class Idle:
    """Following a file: the end was reached; the consumer waits, then asks for more."""


IDLE: Final = Idle()


class LineBlocks:
    """Splits what `stream.read1` returns into groups. When `follow`, the end of the stream
    is not the end: `IDLE` is yielded (a line without its newline yet is kept back) and
    reading goes on when the consumer asks again."""

    def __init__(self, stream: BinaryIO, max_line_bytes: int, follow: bool = False,
                 scan: Callable[[bytes], bool] | None = None) -> None:
        self.stream = stream
        self.max_line_bytes = max_line_bytes
        self.head_bytes = min(OVERSIZE_HEAD_BYTES, max_line_bytes)  # what an oversize line keeps
        self.follow = follow
        self.scan = scan  # asked once per block; its answer travels with the block's groups
        self.partial = b""
        self.skipping: OversizeLine | None = None  # an oversize line whose newline is still ahead

    def groups(self) -> Iterator[Group | Idle]:
        while True:
            # read1: what is there now, up to a block (a pipe's lines arrive as they are written)
            data = cast(io.BufferedReader, self.stream).read1(BLOCK_BYTES)
            if data:
                yield from self._split(data)
            elif self.follow:
                yield IDLE
            else:
                yield from self._end()
                return

    def restart(self, stream: BinaryIO) -> None:
        """Following: the file was truncated or replaced; start over with no partial line."""
        self.stream = stream
        self.partial = b""
        self.skipping = None

    def _split(self, data: bytes) -> Iterator[Group]:
        if self.skipping is not None:
            newline = data.find(b"\n")
            if newline < 0:
                self.skipping.consumed += len(data)
                return
            oversize, self.skipping = self.skipping, None
            oversize.consumed += newline + 1
            yield oversize
            data = data[newline + 1:]
        block = self.partial + data if self.partial else data
        lines = block.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > self.max_line_bytes:
            self.skipping = OversizeLine(self.partial[:self.head_bytes], len(self.partial))
            self.partial = b""
        yield from self._grouped(lines, self.scan is not None and self.scan(block))

    def _grouped(self, lines: list[bytes], flagged: bool) -> Iterator[Group]:
        limit = self.max_line_bytes
        if lines and max(map(len, lines)) > limit:
            start = 0
            for index, line in enumerate(lines):
                if len(line) > limit:
                    yield from self._grouped(lines[start:index], flagged)
                    yield OversizeLine(line[:self.head_bytes], len(line) + 1)
                    start = index + 1
            lines = lines[start:]
        for start in range(0, len(lines), GROUP_LINES):
            group = lines[start:start + GROUP_LINES]
            yield LineGroup(group, sum(map(len, group)) + len(group), True, flagged)

    def _end(self) -> Iterator[Group]:
        """The stream ended: a last line without a newline is still a line."""
        if self.skipping is not None:
            oversize, self.skipping = self.skipping, None
            yield oversize
        elif self.partial:
            last, self.partial = self.partial, b""
            yield LineGroup([last], len(last), False, self.scan is not None and self.scan(last))
