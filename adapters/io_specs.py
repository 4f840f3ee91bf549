"""Specs of the node types that read or write the outside world."""

from typing import Final

from adapters.file_read import make_file_read, make_stdin
from adapters.file_write import make_file_write, make_stdout
from engine.spec import SINK, SOURCE, NodeSpec, param, params_schema

READ_FORMATS: Final = ["jsonl", "csv", "lines"]
WRITE_FORMATS: Final = ["jsonl", "csv"]

FILE_READ: Final = NodeSpec(
    name="file.read",
    kind=SOURCE,
    summary="Reads events from a file: JSON Lines, CSV with a header row, or plain lines "
            "(each becomes `{line: ...}`). With `follow`, keeps reading as the file grows.",
    params=params_schema({
        "path": param({"type": "string", "minLength": 1},
                      "File to read, relative to the working directory.", "data/orders.jsonl"),
        "format": param({"enum": READ_FORMATS}, "How the file is encoded.", "csv", default="jsonl"),
        "follow": param({"type": "boolean"}, "Keep reading appended data, like `tail -f`.", True, default=False),
    }, required=("path",)),
    factory=make_file_read,
    example="type: file.read\nwith: {path: data/orders.jsonl}",
)

STDIN: Final = NodeSpec(
    name="stdin",
    kind=SOURCE,
    summary="Reads events from standard input until it closes.",
    params=params_schema({
        "format": param({"enum": READ_FORMATS}, "How the input is encoded.", "lines", default="jsonl"),
    }),
    factory=make_stdin,
    example="type: stdin\nwith: {format: lines}",
)

STDOUT: Final = NodeSpec(
    name="stdout",
    kind=SINK,
    summary="Writes each event to standard output.",
    params=params_schema({
        "format": param({"enum": WRITE_FORMATS}, "Output encoding.", "csv", default="jsonl"),
    }),
    factory=make_stdout,
    example="type: stdout\nfrom: totals",
)

FILE_WRITE: Final = NodeSpec(
    name="file.write",
    kind=SINK,
    summary="Writes events to a file as JSON Lines or CSV.",
    params=params_schema({
        "path": param({"type": "string", "minLength": 1},
                      "File to write, relative to the working directory.", "out/totals.jsonl"),
        "format": param({"enum": WRITE_FORMATS}, "Output encoding.", "csv", default="jsonl"),
        "mode": param({"enum": ["truncate", "append"]},
                      "`truncate` replaces the file when the graph starts; `append` adds to it.",
                      "append", default="truncate"),
    }, required=("path",)),
    factory=make_file_write,
    example="type: file.write\nfrom: totals\nwith: {path: out/totals.jsonl}",
)

IO_SPECS: Final = (FILE_READ, STDIN, STDOUT, FILE_WRITE)
