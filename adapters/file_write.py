"""`stdout` and `file.write`: each batch is encoded, written and flushed off the loop."""

import asyncio
import os
import sys
from typing import Final, TextIO

from adapters.formats import CSV, CsvEncoder, encode_jsonl, existing_csv_header
from engine.node import AsyncSink, Batch, NodeContext, NodeFailure

APPEND: Final = "append"


class WriteSink(AsyncSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.format = str(ctx.params.get("format", "jsonl"))
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
    async def open(self) -> None:
        # Looked up now, not at import, so a redirected or captured stdout is honoured.
        self.handle = sys.stdout


class FileWrite(WriteSink):
    async def open(self) -> None:
        path = str(self.ctx.params.get("path"))
        self.label = path
        append = self.ctx.params.get("mode") == APPEND
        if append and self.format == CSV:
            self.csv = CsvEncoder(existing_csv_header(path))
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            self.handle = open(path, "a" if append else "w", encoding="utf-8", newline="")
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
