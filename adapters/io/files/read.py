"""`file.read` and `stdin`: records read in blocks of lines, decoded, handed to the graph.

A regular file read to its end is read on the event loop's thread (its reads come from the
page cache and never wait). `stdin` and `follow` can wait for data, so a daemon thread
reads for them and posts chunks into a small bounded asyncio queue (so a slow graph slows
the reader down instead of filling memory); a daemon thread also means a `stdin` blocked
on a terminal never keeps the process alive after a stop.
"""

import asyncio
import os
import stat
import sys
import threading
from dataclasses import dataclass
from typing import BinaryIO, Final

from adapters.io.files.line_reader import MAX_LINE_BYTES, Chunk, LineReader, Record, Stopped
from adapters.io.formats import JSONL, BadRecord
from engine.node import AsyncSource, Batch, Failures, NodeContext, NodeFailure
from engine.params import Raw, expect, flag, text_of, whole

QUEUE_BATCHES: Final = 4


@dataclass(frozen=True)
class FileReadParams:
    path: str
    format: str = JSONL
    follow: bool = False  # keep reading what is appended, like `tail -f`
    max_line_bytes: int = MAX_LINE_BYTES


def parse_file_read(raw: Raw) -> FileReadParams:
    return FileReadParams(text_of(raw, "path"), text_of(raw, "format", JSONL), flag(raw, "follow"),
                          whole(raw, "max_line_bytes", MAX_LINE_BYTES))


@dataclass(frozen=True)
class StdinParams:
    format: str = JSONL
    max_line_bytes: int = MAX_LINE_BYTES


def parse_stdin(raw: Raw) -> StdinParams:
    return StdinParams(text_of(raw, "format", JSONL), whole(raw, "max_line_bytes", MAX_LINE_BYTES))


class ReaderThread:
    """Runs a LineReader in a daemon thread and posts its chunks into a small bounded asyncio
    queue (so a slow graph slows the reader down instead of filling memory)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reader: LineReader) -> None:
        self.loop = loop
        self.reader = reader
        self.queue: asyncio.Queue[Chunk] = asyncio.Queue(QUEUE_BATCHES)
        self.thread = threading.Thread(target=self._run, name=f"read {reader.path or 'stdin'}", daemon=True)
        self.thread.start()

    def _post(self, chunk: Chunk) -> None:
        if self.reader.stopped:
            raise Stopped()
        try:
            asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop).result()
        except RuntimeError as exc:  # the loop is gone: the graph stopped
            raise Stopped() from exc

    def _run(self) -> None:
        try:
            for chunk in self.reader.chunks():
                self._post(chunk)
        except Stopped:
            return

    async def next(self) -> Chunk:
        return await self.queue.get()

    def done(self) -> bool:
        return not self.thread.is_alive()


class InlineReader:
    """Runs a LineReader on the event loop's thread: for a regular file, whose reads come
    from the page cache, this is cheaper than a thread handing chunks over."""

    def __init__(self, reader: LineReader) -> None:
        self.reader = reader
        self.chunks = reader.chunks()

    async def next(self) -> Chunk:
        return next(self.chunks)

    def done(self) -> bool:
        return True


class ReadSource(AsyncSource):
    """Shared by `file.read` and `stdin`."""

    def __init__(self, ctx: NodeContext, fmt: str, max_line_bytes: int) -> None:
        super().__init__(ctx)
        self.format = fmt
        self.max_line_bytes = max_line_bytes
        self.reader: ReaderThread | InlineReader | None = None
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
        reader = LineReader(stream, self.format, path, follow, self.start, self.max_line_bytes)
        # A regular file that is read to its end never waits: no thread (see InlineReader).
        regular = not follow and _is_regular(stream)
        self.reader = InlineReader(reader) if regular else ReaderThread(asyncio.get_running_loop(), reader)

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        assert self.reader is not None
        chunk = await self.reader.next()
        if chunk.failure:
            raise NodeFailure(f"{self.where()}: {chunk.failure}")
        out = outs[0]
        records, bad = chunk.decoded()
        if not bad:
            out.extend(records)  # type: ignore[arg-type]  # no BadRecord among them
        else:
            self._hand_on(records, failures, out, outs)
        self.done_bytes = chunk.done_bytes
        self.lines = chunk.lines
        return not chunk.end

    def _hand_on(self, records: list[Record], failures: Failures, out: Batch, outs: list[Batch]) -> None:
        for record in records:
            if isinstance(record, BadRecord):
                # Decoding the same bytes again cannot succeed, so a retry policy
                # uses up its attempts at once and applies its `then`.
                while not failures.event_failed({"line": record.raw}, record.message(), outs):
                    pass
            else:
                out.append(record)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.reader.stopped = True

    def progress(self) -> tuple[int, int]:
        return (self.done_bytes, self.total_bytes)


class FileRead(ReadSource):
    """Resumable: its position is the byte offset (and line count) after what it emitted."""

    def __init__(self, ctx: NodeContext) -> None:
        self.params = expect(ctx.params, FileReadParams)
        super().__init__(ctx, self.params.format, self.params.max_line_bytes)

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
        if self.reader is not None and self.reader.done():
            self.reader.reader.stream.close()


class StdinRead(ReadSource):
    def __init__(self, ctx: NodeContext) -> None:
        params = expect(ctx.params, StdinParams)
        super().__init__(ctx, params.format, params.max_line_bytes)

    def stream(self) -> tuple[BinaryIO, str, bool]:
        return sys.stdin.buffer, "", False


def make_file_read(ctx: NodeContext) -> AsyncSource:
    return FileRead(ctx)


def make_stdin(ctx: NodeContext) -> AsyncSource:
    return StdinRead(ctx)


def _is_regular(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # a stream without a file descriptor (io.UnsupportedOperation)
        return False
