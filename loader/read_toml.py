"""TOML -> Document.

`tomllib` parses (it is the standard library's, and strict), but it reports no
positions. A light line scanner then records where each table header and each
`key = value` sits, including keys inside one-line inline tables and arrays of tables,
so problems in TOML files point at a line and column just as in YAML.
"""

import re
import tomllib
from typing import Final

from loader.document import MAX_DEPTH, MAX_INT_BITS, TOO_LONG_NUMBER, Document, KeyPath, Pos
from loader.problems import ERROR, Problem, format_path

_AT: Final = re.compile(r"\(at line (\d+), column (\d+)\)")
# Keys are matched only where one may start (see `_Indexer._assignments`), never searched
# for: a search over a long word that is not a key (a long string on a line of its own, in
# a multi-line array) retried every suffix of it, and took minutes on a 100 kB line.
_BARE_OR_QUOTED_KEY: Final = r'(?:[A-Za-z0-9_-]++|"[^"]*"|\'[^\']*\')'
_DOTTED_KEY: Final = rf"{_BARE_OR_QUOTED_KEY}(?:\s*\.\s*{_BARE_OR_QUOTED_KEY})*"
_HEADER: Final = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?")
_ASSIGN: Final = re.compile(rf"({_DOTTED_KEY})\s*=\s*")
_KEY_PART: Final = re.compile(_BARE_OR_QUOTED_KEY)
_TUPLE: Final = re.compile(r"\((?:'[^']*'(?:, )?)+\)")
# A number Python refuses to read (more than sys.get_int_max_str_digits() digits): tomllib
# raises a plain ValueError for it, without a position.
_LONG_NUMBER: Final = re.compile(r"[0-9_]{4000,}")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(dotted))


class _Indexer:
    """Records key and value positions by scanning the text line by line."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.array_counts: dict[KeyPath, int] = {}

    def run(self) -> None:
        table: KeyPath = ()
        # TOML lines end at "\n" alone (str.splitlines would also split strings holding "\u2028").
        for number, line in enumerate(self.doc.text.split("\n"), start=1):
            line = line.removesuffix("\r")
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

    def _assignments(self, line: str, number: int, table: KeyPath, start: int, end: int, depth: int = 0) -> None:
        """Record `key = value` pairs between start and end, descending into `{...}`.

        Only a key at the start of the segment or after `{` / `,` is a key, so keys are
        tried there alone: each character is looked at a bounded number of times.
        """
        cursor = start
        while cursor < end:
            key_at = cursor
            while key_at < end and line[key_at] in " \t":
                key_at += 1
            match = _ASSIGN.match(line, key_at, end)
            if match is None:
                cursor = _after_separator(line, cursor, end)
                continue
            path = table + _split_key(match.group(1))
            self.doc.keys.setdefault(path, Pos(number, match.start(1) + 1))
            value_at = match.end()
            self.doc.values.setdefault(path, Pos(number, value_at + 1))
            if value_at < end and line[value_at] == "{" and depth <= MAX_DEPTH:  # deeper is refused anyway
                close = _value_end(line, value_at, end)
                self._assignments(line, number, path, value_at + 1, close, depth + 1)
                cursor = close + 1
            else:
                cursor = _value_end(line, value_at, end)


def _after_separator(line: str, start: int, end: int) -> int:
    """Just after the first `{` or `,` at or after `start` (where a key may follow); `end` if none."""
    found = [i for i in (line.find("{", start, end), line.find(",", start, end)) if i >= 0]
    return min(found) + 1 if found else end


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


def _unloadable(data: object) -> tuple[KeyPath, str] | None:
    """The first value nested deeper than MAX_DEPTH or too large a number, and why (walked
    without recursion: dotted keys nest tables as deep as a line is long)."""
    stack: list[tuple[object, KeyPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path, _DEEP_MESSAGE
        if isinstance(value, dict):
            stack.extend((child, path + (key,)) for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, path + (i,)) for i, child in enumerate(value))
        elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            return path, TOO_LONG_NUMBER
    return None


def _deep_bracket(text: str) -> Pos:
    """Where `[` and `{` first nest deeper than MAX_DEPTH, skipping strings and comments
    (for a file too deep for tomllib itself, which says nothing of where); else line 1."""
    depth = 0
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _position(text, i)
        elif ch in "]}":
            depth -= 1
        i += 1
    return Pos(1, 1)


def _position(text: str, offset: int) -> Pos:
    line = text.count("\n", 0, offset) + 1
    return Pos(line, offset - (text.rfind("\n", 0, offset) + 1) + 1)


_DEEP_MESSAGE: Final = f"the document is nested too deeply to load (more than {MAX_DEPTH} levels)"
_NUMBER_HINT: Final = "write a smaller number, or quote it to make it text"


def read_toml(file: str, text: str) -> tuple[Document, list[Problem]]:
    doc = Document(file=file, format="toml", text=text)
    # Positions first: the scan also finds dotted keys nested too deeply, which tomllib would
    # read in time growing with the square of their length.
    _Indexer(doc).run()
    longest = max(doc.keys, key=len, default=())
    if len(longest) > MAX_DEPTH:
        pos = doc.keys[longest]
        return doc, [Problem("HR005", ERROR, file, pos.line, pos.column, format_path(longest[:MAX_DEPTH + 1]),
                             _DEEP_MESSAGE, "flatten the nesting")]
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
        deep = _deep_bracket(text)
        return doc, [Problem("HR005", ERROR, file, deep.line, deep.column, "", _DEEP_MESSAGE, "flatten the nesting")]
    except ValueError:  # a number too long to read
        long = _LONG_NUMBER.search(text)
        pos = _position(text, long.start()) if long else Pos(1, 1)
        return doc, [Problem("HR005", ERROR, file, pos.line, pos.column, "", TOO_LONG_NUMBER, _NUMBER_HINT)]
    if doc.data == {} and all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        return doc, [Problem("HR004", ERROR, file, 1, 1, "", "the file holds no document",
                             "a graph file starts with `version = 1` and `[nodes.<name>]` tables")]
    unloadable = _unloadable(doc.data)
    if unloadable is not None:
        path, message = unloadable
        pos = doc.locate(path, at_key=message == _DEEP_MESSAGE)
        hint = "flatten the nesting" if message == _DEEP_MESSAGE else _NUMBER_HINT
        return doc, [Problem("HR005", ERROR, file, pos.line, pos.column, format_path(path), message, hint)]
    # Every TOML string is quoted; `${VAR}` values are still typed (there is no other way
    # to write a number from the environment in TOML), so `quoted` stays empty.
    return doc, []
