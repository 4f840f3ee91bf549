"""TOML -> Document.

`tomllib` parses (it is the standard library's, and strict), but it reports no
positions. A light line scanner then records where each table header and each
`key = value` sits, including keys inside one-line inline tables and arrays of tables,
so problems in TOML files point at a line and column just as in YAML.
"""

import re
import tomllib
from typing import Final

from loader.document import Document, KeyPath, Pos
from loader.problems import ERROR, Problem

_AT: Final = re.compile(r"\(at line (\d+), column (\d+)\)")
_BARE_OR_QUOTED_KEY: Final = r'(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')'
_DOTTED_KEY: Final = rf"{_BARE_OR_QUOTED_KEY}(?:\s*\.\s*{_BARE_OR_QUOTED_KEY})*"
_HEADER: Final = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?")
_ASSIGN: Final = re.compile(rf"({_DOTTED_KEY})\s*=\s*")
_KEY_PART: Final = re.compile(_BARE_OR_QUOTED_KEY)
_TUPLE: Final = re.compile(r"\((?:'[^']*'(?:, )?)+\)")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(dotted))


class _Indexer:
    """Records key and value positions by scanning the text line by line."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.array_counts: dict[KeyPath, int] = {}

    def run(self) -> None:
        table: KeyPath = ()
        for number, line in enumerate(self.doc.text.splitlines(), start=1):
            stripped = line.lstrip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER.match(line)
            if header is not None:
                table = self._header(header, number)
                continue
            self._assignments(line, number, table, 0, len(line))

    def _header(self, match: re.Match[str], number: int) -> KeyPath:
        path: KeyPath = _split_key(match.group(2))
        if match.group(1) == "[[":
            index = self.array_counts.get(path, 0)
            self.array_counts[path] = index + 1
            self.doc.keys.setdefault(path, Pos(number, match.start(2) + 1))
            path = path + (index,)
        pos = Pos(number, match.start(2) + 1)
        self.doc.keys.setdefault(path, pos)
        self.doc.values.setdefault(path, pos)
        return path

    def _assignments(self, line: str, number: int, table: KeyPath, start: int, end: int) -> None:
        """Record `key = value` pairs between start and end, descending into `{...}`."""
        cursor = start
        while cursor < end:
            match = _ASSIGN.search(line, cursor, end)
            if match is None:
                return
            # Only a key at the start of the segment or after `{` / `,` is a key.
            before = line[start:match.start()].rstrip()
            if before and before[-1] not in "{,":
                cursor = match.end()
                continue
            path = table + _split_key(match.group(1))
            self.doc.keys.setdefault(path, Pos(number, match.start(1) + 1))
            value_at = match.end()
            self.doc.values.setdefault(path, Pos(number, value_at + 1))
            if value_at < end and line[value_at] == "{":
                close = _value_end(line, value_at, end)
                self._assignments(line, number, path, value_at + 1, close)
                cursor = close + 1
            else:
                cursor = _value_end(line, value_at, end)
            start = cursor


def _value_end(line: str, start: int, end: int) -> int:
    """Where the value starting at `start` ends: for `{...}` or `[...]` the index of the
    matching close, otherwise the `,` or `}` that ends it (quotes respected)."""
    quote = ""
    depth = 0
    for i in range(start, end):
        ch = line[i]
        if quote:
            if ch == quote and line[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0 and line[start] in "[{":
                return i
        elif ch == "," and depth == 0:
            return i
    return end


def _paths(data: object, path: KeyPath, out: list[KeyPath]) -> None:
    out.append(path)
    if isinstance(data, dict):
        for key, value in data.items():
            _paths(value, path + (key,), out)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _paths(value, path + (i,), out)


def read_toml(file: str, text: str) -> tuple[Document, list[Problem]]:
    doc = Document(file=file, format="toml", text=text)
    try:
        doc.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _AT.search(message)
        line, column = (int(at.group(1)), int(at.group(2))) if at else (max(text.count("\n"), 1), 1)
        message = _AT.sub("", message).replace("(at end of document)", "at the end of the file").strip()
        # tomllib names tables as Python tuples: ('nodes', 'priced') -> nodes.priced
        message = _TUPLE.sub(lambda m: ".".join(re.findall(r"'([^']*)'", m.group(0))), message)
        if "overwrite" in message or "declare" in message:
            return doc, [Problem("HR003", ERROR, file, line, column, "",
                                 f"duplicate key or table: {message}",
                                 "each key and table may be defined once")]
        hint = "check quotes, brackets and `key = value` syntax around this place"
        before = "\n".join(text.splitlines()[:line])
        if before.count("{") > before.count("}"):
            hint = "a TOML inline table { ... } must stay on one line; use a [table] section for longer ones"
        return doc, [Problem("HR002", ERROR, file, line, column, "", f"invalid TOML: {message}", hint)]
    except RecursionError:
        return doc, [Problem("HR005", ERROR, file, 1, 1, "", "the document is too deeply nested to load",
                             "flatten the nesting")]
    if doc.data == {} and all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        return doc, [Problem("HR004", ERROR, file, 1, 1, "", "the file holds no document",
                             "a graph file starts with `version = 1` and `[nodes.<name>]` tables")]
    _Indexer(doc).run()
    # Every TOML string is quoted; `${VAR}` values are still typed (there is no other way
    # to write a number from the environment in TOML), so `quoted` stays empty.
    return doc, []
