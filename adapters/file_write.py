"""`stdout` and `file.write`: each batch is encoded, written and flushed off the loop."""

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Final, TextIO

from adapters.formats import CSV, JSONL, CsvEncoder, encode_jsonl, existing_csv_header
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
        self.handle: TextIO | None = None
        self.label = "standard output"

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    def encode(self, batch: Batch) -> str:
        return self.csv.encode(batch) if self.format == CSV else encode_jsonl(batch)

    def _write(self, text: str) -> None:
        assert self.handle is not None
        self.handle.write(text)
        self.handle.flush()

    async def write(self, batch: Batch) -> None:
        text = self.encode(batch)
        try:
            await asyncio.to_thread(self._write, text)
        except BrokenPipeError as exc:
            raise NodeFailure(f"{self.where()}: {self.label} was closed by the reader") from exc
        except OSError as exc:
            raise NodeFailure(f"{self.where()}: cannot write {self.label}: {exc.strerror or exc}") from exc


class StdoutWrite(WriteSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx, expect(ctx.params, StdoutParams).format)

    async def open(self) -> None:
        # Looked up now, not at import, so a redirected or captured stdout is honoured.
        self.handle = sys.stdout


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
            self.handle = open(path, "a" if append else "w", encoding="utf-8", newline="")  # noqa: SIM115
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
