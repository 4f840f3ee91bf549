"""`file.read` and `stdin`: records decoded in a reader thread, handed to asyncio.

Blocking reads never touch the event loop: a daemon thread reads and decodes, and posts
batches into a small bounded asyncio queue (so a slow graph slows the reader down instead
of filling memory). A daemon thread also means a `stdin` blocked on a terminal never keeps
the process alive after a stop.
"""

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from adapters.formats import CSV, JSONL, BadRecord, decode_csv, decode_jsonl, decode_line
from engine.node import AsyncSource, Batch, Event, Failures, NodeContext, NodeFailure
from engine.params import Raw, expect, flag, text_of

BATCH_SIZE: Final = 1024
QUEUE_BATCHES: Final = 4
FOLLOW_POLL_S: Final = 0.2

Record = Event | BadRecord
Decoder = Callable[[Iterable[tuple[int, str]]], Iterator[Record]]


@dataclass(frozen=True)
class FileReadParams:
    path: str
    format: str = JSONL
    follow: bool = False  # keep reading what is appended, like `tail -f`


def parse_file_read(raw: Raw) -> FileReadParams:
    return FileReadParams(text_of(raw, "path"), text_of(raw, "format", JSONL), flag(raw, "follow"))


@dataclass(frozen=True)
class StdinParams:
    format: str = JSONL


def parse_stdin(raw: Raw) -> StdinParams:
    return StdinParams(text_of(raw, "format", JSONL))


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
    def __init__(self, records: list[Record], done_bytes: int, end: bool, failure: str = "", lines: int = 0) -> None:
        self.records = records
        self.done_bytes = done_bytes  # the byte offset just after these records
        self.end = end
        self.failure = failure
        self.lines = lines  # lines read up to that offset


class ReaderThread:
    """Reads lines (tailing the file when `follow`), decodes them, posts chunks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: BinaryIO, decode: Decoder,
                 path: str = "", follow: bool = False, start: tuple[int, int] = (0, 0),
                 header_first: bool = False) -> None:
        self.loop = loop
        self.stream = stream
        self.decode = decode
        self.path = path
        self.follow = follow
        self.queue: asyncio.Queue[Chunk] = asyncio.Queue(QUEUE_BATCHES)
        self.pending: list[Record] = []
        # Resuming: the byte offset and line count to continue from (a CSV header is read
        # first, then the file is read on from the offset).
        self.resume_at = start
        self.header_first = header_first
        self.done_bytes = 0
        self.lines_read = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name=f"read {path or 'stdin'}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _post(self, chunk: Chunk) -> None:
        if self.stopped:
            raise _Stopped()
        try:
            asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop).result()
        except RuntimeError as exc:  # the loop is gone: the graph stopped
            raise _Stopped() from exc

    def _post_pending(self) -> None:
        if self.pending:
            records, self.pending = self.pending, []
            self._post(Chunk(records, self.done_bytes, False, lines=self.lines_read))

    def _run(self) -> None:
        try:
            for record in self.decode(self._lines()):
                self.pending.append(record)
                if len(self.pending) >= BATCH_SIZE:
                    self._post_pending()
            records, self.pending = self.pending, []
            self._post(Chunk(records, self.done_bytes, True, lines=self.lines_read))
        except _Stopped:
            return
        except OSError as exc:
            try:
                failure = f"cannot read {self.path or 'stdin'}: {exc.strerror or exc}"
                self._post(Chunk([], self.done_bytes, True, failure))
            except _Stopped:
                return

    def _lines(self) -> Iterator[tuple[int, str]]:
        number = 0
        partial = b""
        stream = self.stream
        offset, resumed_lines = self.resume_at
        if offset > 0:
            if self.header_first:
                yield 1, stream.readline().decode("utf-8", errors="replace").lstrip("\ufeff")
            stream.seek(offset)
            number, self.done_bytes, self.lines_read = resumed_lines, offset, resumed_lines
        while not self.stopped:
            raw = stream.readline()
            if raw.endswith(b"\n") or (raw and not self.follow):
                raw, partial = partial + raw, b""
                self.done_bytes += len(raw)
                number += 1
                self.lines_read = number
                text = raw.decode("utf-8", errors="replace")
                if number == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                yield number, text
            elif raw:
                partial += raw  # a line still being written: wait for its end
            elif not self.follow:
                return
            else:
                self._post_pending()
                time.sleep(FOLLOW_POLL_S)
                if self._reopened():
                    number, partial = 0, b""
                    stream = self.stream

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


class _Stopped(Exception):
    pass


class ReadSource(AsyncSource):
    """Shared by `file.read` and `stdin`."""

    def __init__(self, ctx: NodeContext, fmt: str) -> None:
        super().__init__(ctx)
        self.format = fmt
        self.reader: ReaderThread | None = None
        self.total_bytes = 0
        self.done_bytes = 0
        self.lines = 0
        self.start = (0, 0)  # where a resumed read begins

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    def stream(self) -> tuple[BinaryIO, str, bool]:
        raise NotImplementedError

    async def open(self) -> None:
        stream, path, follow = self.stream()
        self.reader = ReaderThread(asyncio.get_running_loop(), stream, decoder_for(self.format), path, follow,
                                   self.start, self.format == CSV)
        self.reader.start()

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        assert self.reader is not None
        chunk = await self.reader.queue.get()
        if chunk.failure:
            raise NodeFailure(f"{self.where()}: {chunk.failure}")
        out = outs[0]
        for record in chunk.records:
            if isinstance(record, BadRecord):
                # Decoding the same bytes again cannot succeed, so a retry policy
                # uses up its attempts at once and applies its `then`.
                while not failures.event_failed({"line": record.raw}, record.message(), outs):
                    pass
            else:
                out.append(record)
        self.done_bytes = chunk.done_bytes
        self.lines = chunk.lines
        return not chunk.end

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.stopped = True

    def progress(self) -> tuple[int, int]:
        return (self.done_bytes, self.total_bytes)


class FileRead(ReadSource):
    """Resumable: its position is the byte offset (and line count) after what it emitted."""

    def __init__(self, ctx: NodeContext) -> None:
        self.params = expect(ctx.params, FileReadParams)
        super().__init__(ctx, self.params.format)

    def position(self) -> str:
        return f"{self.done_bytes}:{self.lines}"

    def resume(self, position: str) -> None:
        offset, _, lines = position.partition(":")
        if offset.isdigit() and lines.isdigit():
            self.start = (int(offset), int(lines))
            self.done_bytes = int(offset)

    def stream(self) -> tuple[BinaryIO, str, bool]:
        path = self.params.path
        try:
            handle = open(path, "rb")  # noqa: SIM115 (the reader thread holds it; `close` closes it)
        except OSError as exc:
            raise NodeFailure(f"{self.where()}: cannot open {path}: {exc.strerror or exc}") from exc
        follow = self.params.follow
        if not follow:
            self.total_bytes = os.fstat(handle.fileno()).st_size
        return handle, path, follow

    async def close(self) -> None:
        await super().close()
        if self.reader is not None and not self.reader.thread.is_alive():
            self.reader.stream.close()


class StdinRead(ReadSource):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx, expect(ctx.params, StdinParams).format)

    def stream(self) -> tuple[BinaryIO, str, bool]:
        return sys.stdin.buffer, "", False


def make_file_read(ctx: NodeContext) -> AsyncSource:
    return FileRead(ctx)


def make_stdin(ctx: NodeContext) -> AsyncSource:
    return StdinRead(ctx)
