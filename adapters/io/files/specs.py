"""Specs of the file and standard-stream node types: `file.read`, `stdin`, `stdout`, `file.write`."""

from typing import Final

from adapters.io.files.line_reader import MAX_LINE_BYTES
from adapters.io.files.lookup_spec import LOOKUP
from adapters.io.files.read import make_file_read, make_stdin, parse_file_read, parse_stdin
from adapters.io.files.write import APPEND, TRUNCATE, make_file_write, make_stdout, parse_file_write, parse_stdout
from adapters.io.formats import CSV, JSONL, LINES
from engine.spec import FRESH, SINK, SOURCE, NodeSpec, param, params_schema

# Every default below is the constant the type's `parse` falls back to: the schema documents
# it, the parser applies it.
READ_FORMATS: Final = [JSONL, CSV, LINES]
WRITE_FORMATS: Final = [JSONL, CSV]
MAX_LINE_PARAM: Final = param(
    {"type": "integer", "minimum": 1},
    "A longer line is one failed event (its first 1,024 bytes in the dead letter) and reading goes on; "
    "no more than this is ever held in memory for one line.", 1048576, default=MAX_LINE_BYTES)

FILE_READ: Final = NodeSpec(
    name="file.read",
    kind=SOURCE,
    summary="Reads events from a file: JSON Lines, CSV with a header row, or plain lines "
            "(each becomes `{line: ...}`). With `follow`, keeps reading as the file grows.",
    params=params_schema({
        "path": param({"type": "string", "minLength": 1},
                      "File to read, relative to the working directory.", "data/orders.jsonl"),
        "format": param({"enum": READ_FORMATS}, "How the file is encoded.", CSV, default=JSONL),
        "follow": param({"type": "boolean"}, "Keep reading appended data, like `tail -f`.", True, default=False),
        "max_line_bytes": MAX_LINE_PARAM,
    }, required=("path",)),
    factory=make_file_read,
    parse=parse_file_read,
    output=FRESH,  # each event is decoded from its line: nobody else holds it
    example="type: file.read\nwith: {path: data/orders.jsonl}",
)

STDIN: Final = NodeSpec(
    name="stdin",
    kind=SOURCE,
    summary="Reads events from standard input until it closes.",
    params=params_schema({
        "format": param({"enum": READ_FORMATS}, "How the input is encoded.", LINES, default=JSONL),
        "max_line_bytes": MAX_LINE_PARAM,
    }),
    factory=make_stdin,
    parse=parse_stdin,
    output=FRESH,
    example="type: stdin\nwith: {format: lines}",
)

STDOUT: Final = NodeSpec(
    name="stdout",
    kind=SINK,
    summary="Writes each event to standard output.",
    params=params_schema({
        "format": param({"enum": WRITE_FORMATS}, "Output encoding.", CSV, default=JSONL),
    }),
    factory=make_stdout,
    parse=parse_stdout,
    example="type: stdout\nfrom: totals",
)

FILE_WRITE: Final = NodeSpec(
    name="file.write",
    kind=SINK,
    summary="Writes events to a file as JSON Lines or CSV.",
    params=params_schema({
        "path": param({"type": "string", "minLength": 1},
                      "File to write, relative to the working directory.", "out/totals.jsonl"),
        "format": param({"enum": WRITE_FORMATS}, "Output encoding.", CSV, default=JSONL),
        "mode": param({"enum": [TRUNCATE, APPEND]},
                      "`truncate` replaces the file when the graph starts; `append` adds to it.",
                      APPEND, default=TRUNCATE),
    }, required=("path",)),
    factory=make_file_write,
    parse=parse_file_write,
    example="type: file.write\nfrom: totals\nwith: {path: out/totals.jsonl}",
)

SPECS: Final = (FILE_READ, STDIN, STDOUT, FILE_WRITE, LOOKUP)
