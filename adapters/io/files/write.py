"""`stdout` and `file.write`: each batch is encoded, written and flushed (a regular file on the
event loop's thread, a pipe or terminal off it)."""

import asyncio
import io
import os
import stat
import sys
from dataclasses import dataclass
from typing import BinaryIO, Final, TextIO, cast

from adapters.fast_json import encode_jsonl_bytes
from adapters.io.formats import CSV, JSONL, CsvEncoder, existing_csv_header
from engine.node import AsyncSink, Batch, NodeContext, NodeFailure
from engine.params import Raw, expect, text_of

APPEND: Final = "append"
TRUNCATE: Final = "truncate"


@dataclass(frozen=True)
class FileWriteParams:
    path: str
    format: str = JSONL
    mode: str = TRUNCATE  # or APPEND


def parse_file_write(raw: Raw) -> FileWriteParams:
    return FileWriteParams(text_of(raw, "path"), text_of(raw, "format", JSONL), text_of(raw, "mode", TRUNCATE))


@dataclass(frozen=True)
class StdoutParams:
    format: str = JSONL


def parse_stdout(raw: Raw) -> StdoutParams:
    return StdoutParams(text_of(raw, "format", JSONL))


class WriteSink(AsyncSink):
    def __init__(self, ctx: NodeContext, fmt: str) -> None:
        super().__init__(ctx)
        self.format = fmt
        self.csv = CsvEncoder()
        self.handle: BinaryIO | None = None
        self.label = "standard output"
        # A regular file is written on the event loop's thread: a write into the page cache
        # costs less than handing it to a thread. A pipe or a terminal may block: a thread.
        self.inline = False

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    def encode(self, batch: Batch) -> bytes:
        if self.format != CSV:
            return encode_jsonl_bytes(batch)
        return self.csv.encode(batch).encode("utf-8")

    def _write(self, data: bytes) -> None:
        assert self.handle is not None
        self.handle.write(data)
        self.handle.flush()

    async def write(self, batch: Batch) -> None:
        try:
            text = self.encode(batch)
        except UnicodeEncodeError as exc:
            # Text that is not Unicode (a lone surrogate, from a `\ud800` escape in JSON input).
            raise NodeFailure(f"{self.where()}: cannot write {self.label}: an event holds text that is not "
                              f"valid Unicode ({exc.reason}); fix or drop it upstream") from exc
        try:
            if self.inline:
                self._write(text)
            else:
                await asyncio.to_thread(self._write, text)
        except BrokenPipeError as exc:
            raise NodeFailure(f"{self.where()}: {self.label} was closed by the reader") from exc
        except OSError as exc:
            raise NodeFailure(f"{self.where()}: cannot write {self.label}: {exc.strerror or exc}") from exc


class _TextOut(io.RawIOBase):
    """A standard output replaced by a text-only stream (an embedding, a test capture)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.stream.write(data.decode("utf-8"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


class StdoutWrite(WriteSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx, expect(ctx.params, StdoutParams).format)

    async def open(self) -> None:
        # Looked up now, not at import, so a redirected or captured stdout is honoured; what
        # Python wrote to it as text goes out first.
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        self.handle = buffer if buffer is not None else cast(BinaryIO, _TextOut(sys.stdout))


class FileWrite(WriteSink):
    def __init__(self, ctx: NodeContext) -> None:
        self.params = expect(ctx.params, FileWriteParams)
        super().__init__(ctx, self.params.format)

    async def open(self) -> None:
        path = self.params.path
        self.label = path
        append = self.params.mode == APPEND
        if append and self.format == CSV:
            self.csv = CsvEncoder(existing_csv_header(path))
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            # Written to until the node stops; `close` closes it.
            self.handle = open(path, "ab" if append else "wb")  # noqa: SIM115
            self.inline = stat.S_ISREG(os.fstat(self.handle.fileno()).st_mode)
        except OSError as exc:
            raise NodeFailure(f"{self.where()}: cannot write {path}: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError as exc:
                raise NodeFailure(f"{self.where()}: cannot write {self.label}: {exc.strerror or exc}") from exc
            self.handle = None


def make_stdout(ctx: NodeContext) -> AsyncSink:
    return StdoutWrite(ctx)


def make_file_write(ctx: NodeContext) -> AsyncSink:
    return FileWrite(ctx)
