"""CSV rows from groups of lines, a group at a time.

Rows become events keyed by the header row; values stay strings (convert them with
`int()`/`float()` in a map). A group without a quote character has one row per line and is
parsed by one `csv.reader` over the whole group. A quoted field may span lines, and so the
end of a group: the lines of a row still open when a group ends are carried into the next
group (and left out of the offset a resumed read starts from).
"""

import csv
from collections.abc import Iterator
from typing import Final

from adapters.formats import BadRecord
from engine.node import Event

Record = Event | BadRecord
_QUOTE: Final = '"'


class CsvRows:
    def __init__(self) -> None:
        self.header: list[str] | None = None
        self.carry: list[str] = []  # the lines of a row still open (each ended by a newline)
        self.carry_sizes: list[int] = []  # their sizes in the file
        self.carry_first = 0  # the number of the first carried line

    def carried(self) -> tuple[int, int]:
        """(bytes, lines) read but held back in an open row."""
        return sum(self.carry_sizes), len(self.carry)

    def take_header(self, text: str) -> None:
        """Resuming: the header line, read again from the start of the file."""
        for row in csv.reader([text]):
            if row and row != [""]:
                self.header = [name.strip() for name in row]

    def decode(self, texts: list[str], sizes: list[int], first: int, out: list[Record], final: bool,
               complete: bool = True) -> None:
        """Appends the records of lines `first`, `first + 1`, ... (without their newlines; the
        last has none in the file unless `complete`) to `out`. Unless `final`, a row still
        open at the last line is carried into the next call."""
        if self.carry:
            texts, sizes, first = self.carry + texts, self.carry_sizes + sizes, self.carry_first
            self.carry, self.carry_sizes = [], []
        if self.header is not None and not any(_QUOTE in text for text in texts):
            try:
                rows = list(csv.reader(texts))
            except csv.Error:
                pass  # the row-by-row reader below says which line
            else:
                self._rows_of_lines(rows, texts, first, out)
                return
        lines = [text + "\n" for text in texts]  # a quoted field keeps its line breaks
        if lines and not complete:
            lines[-1] = texts[-1]
        self._rows(lines, texts, sizes, first, out, final)

    def _rows_of_lines(self, rows: list[list[str]], texts: list[str], first: int, out: list[Record]) -> None:
        """Without quotes every line is one row."""
        header = self.header
        assert header is not None
        width = len(header)
        if all(len(row) == width for row in rows):
            out.extend([dict(zip(header, row)) for row in rows])
            return
        for index, row in enumerate(rows):
            self._record(row, first + index, out)

    def _rows(self, lines: list[str], texts: list[str], sizes: list[int], first: int, out: list[Record],
              final: bool) -> None:
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
                self.carry, self.carry_sizes, self.carry_first = texts[start:], sizes[start:], first + start
                return
            self._record(row, first + start, out)

    def _record(self, row: list[str], number: int, out: list[Record]) -> None:
        if not row or row == [""]:
            return
        if self.header is None:
            self.header = [name.strip() for name in row]
            return
        if len(row) != len(self.header):
            out.append(BadRecord(number, f"expected {len(self.header)} fields as in the header, got {len(row)}",
                                 ",".join(row)))
            return
        out.append(dict(zip(self.header, row)))


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
