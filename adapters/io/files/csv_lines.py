"""CSV rows from groups of lines, a group at a time.

Rows become events keyed by the header row; values stay strings (convert them with
`int()`/`float()` in a map). A group without a quote character has one row per line and is
parsed by one `csv.reader` over the whole group. A quoted field may span lines, and so the
end of a group: the lines of a row still open when a group ends are carried into the next
group (and left out of the offset a resumed read starts from).
"""

import csv
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Final, cast

from adapters.io.formats import BadRecord
from engine.node import Event

Record = Event | BadRecord
_NOT_PLAIN: Final = ('"', "\r", "\x00")


class CsvRows:
    def __init__(self) -> None:
        self.header: list[str] | None = None
        self.event_of: Callable[[list[str]], Event] = _before_the_header
        self.carry: list[str] = []  # the lines of a row still open (each ended by a newline)
        self.carry_sizes: list[int] = []  # their sizes in the file
        self.carry_first = 0  # the number of the first carried line

    def set_header(self, row: list[str]) -> None:
        self.header = [name.strip() for name in row]
        # An event from a row of the header's length: a dict display, `{'id': r[0], ...}`,
        # builds it in a third less time than dict(zip(header, row)). The names are written
        # as string literals (repr), so no text in the file becomes code.
        items = ", ".join(f"{name!r}: r[{i}]" for i, name in enumerate(self.header))
        self.event_of = cast(Callable[[list[str]], Event], eval(f"lambda r: {{{items}}}", {"__builtins__": {}}))

    def carried(self) -> tuple[int, int]:
        """(bytes, lines) read but held back in an open row."""
        return sum(self.carry_sizes), len(self.carry)

    def drop_open_row(self) -> int:
        """Forgets a row still open; returns the number of its first line (0: none was)."""
        first = self.carry_first if self.carry else 0
        self.carry, self.carry_sizes = [], []
        return first

    def take_header(self, text: str) -> None:
        """Resuming: the header line, read again from the start of the file."""
        for row in csv.reader([text]):
            if row and row != [""]:
                self.set_header(row)

    def decode(self, text: str, sizes: list[int], first: int, out: list[Record], final: bool,
               complete: bool = True) -> None:
        """Appends the records of lines `first`, `first + 1`, ... (`text`: the lines joined
        by newlines; the last has none in the file unless `complete`) to `out`. Unless
        `final`, a row still open at the last line is carried into the next call."""
        texts = text.split("\n") if sizes else []
        if self.carry:
            texts, sizes, first = self.carry + texts, self.carry_sizes + sizes, self.carry_first
            self.carry, self.carry_sizes = [], []
        elif self.header is not None and not any(c in text for c in _NOT_PLAIN):
            # No quotes, carriage returns or NULs: each line is one row, its fields split at
            # commas, exactly as csv.reader splits them.
            self._rows_of_lines(list(map(str.split, texts, repeat(",", len(texts)))), first, out)
            return
        lines = [line + "\n" for line in texts]  # a quoted field keeps its line breaks
        if lines and not complete:
            lines[-1] = texts[-1]
        self._rows(lines, sizes, first, out, final)

    def _rows_of_lines(self, rows: list[list[str]], first: int, out: list[Record]) -> None:
        """Without quotes every line is one row."""
        header = self.header
        assert header is not None
        if set(map(len, rows)) == {len(header)} and len(header) > 1:  # (one field: "" is a blank line)
            out.extend(map(self.event_of, rows))
            return
        for index, row in enumerate(rows):
            self._record(row, first + index, out)

    def _rows(self, lines: list[str], sizes: list[int], first: int, out: list[Record], final: bool) -> None:
        fed = _Feed(lines)
        reader = csv.reader(fed)
        while True:
            start = reader.line_num  # lines taken before this row
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                out.append(BadRecord(first + start, f"invalid CSV ({exc})", ""))
                continue
            if fed.exhausted and not final:
                # The lines ran out inside a quoted field: the row goes on in the next group.
                carried = [line[:-1] for line in lines[start:]]  # each ended by its newline
                self.carry, self.carry_sizes, self.carry_first = carried, sizes[start:], first + start
                return
            self._record(row, first + start, out)

    def _record(self, row: list[str], number: int, out: list[Record]) -> None:
        if not row or row == [""]:
            return
        if self.header is None:
            self.set_header(row)
            return
        if len(row) != len(self.header):
            out.append(BadRecord(number, f"expected {len(self.header)} fields as in the header, got {len(row)}",
                                 ",".join(row)))
            return
        out.append(self.event_of(row))


def _before_the_header(row: list[str]) -> Event:
    raise AssertionError("a row became an event before the header was read")


class _Feed(Iterator[str]):
    """The lines of a group for csv.reader, noting when it asked past the last one."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = iter(texts)
        self.exhausted = False

    def __next__(self) -> str:
        try:
            return next(self.texts)
        except StopIteration:
            self.exhausted = True
            raise
