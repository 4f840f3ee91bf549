"""The reference table of a `lookup` node, read from a CSV or JSON Lines file.

The first load happens when the node is built: a table that cannot be loaded (no file, a
missing key column, a duplicate key, more rows than `max_rows`) stops the graph before it
starts, with one line naming the file (and the line). Afterwards the file is watched: at
most once per `CHECK_EVERY_S` (of the graph's clock) `current()` compares its size, change
time and inode with the loaded version's, and a changed file is read again in a thread, so
a large table never holds up the scheduler. The new rows replace the old ones in one
assignment, once complete; a reload that fails keeps the old table and logs one line.

CSV tables have a header row and their values stay text, as `file.read` reads CSV (`""`
for an empty cell). JSON Lines tables keep JSON's types; a blank line is skipped.
"""

import csv
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Final

from engine.lookup import CSV_TABLE, Lookup, LookupParams, Rows, TableSource, key_text
from engine.node import Clock, Event, NodeContext, NodeFailure, Transform
from engine.params import expect

LOG: Final = logging.getLogger("headrace")
CHECK_EVERY_S: Final = 1.0

Signature = tuple[int, int, int]  # (size, change time in ns, inode): a changed file differs


class TableProblem(Exception):
    """The table cannot be used; the message is one line (it names the line where one is to blame)."""


def signature(path: str) -> Signature:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _csv_records(path: str) -> Iterator[tuple[int, dict[str, object]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise TableProblem("the file is empty: a CSV table needs a header row")
        columns = [name.strip() for name in header]
        yield 0, {name: name for name in columns}  # the header, for the column checks
        for row in reader:
            if not row:
                continue
            if len(row) > len(columns):
                raise TableProblem(f"line {reader.line_num}: {len(row)} values but {len(columns)} columns")
            yield reader.line_num, dict(zip(columns, row))


def _jsonl_records(path: str) -> Iterator[tuple[int, dict[str, object]]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                raise TableProblem(f"line {number}: not valid JSON") from None
            except RecursionError:
                raise TableProblem(f"line {number}: JSON nests too deeply") from None
            if not isinstance(value, dict):
                raise TableProblem(f"line {number}: expected a JSON object")
            yield number, value


def load_rows(params: LookupParams) -> Rows:
    """Every row of the table, keyed, holding the fields it adds. Raises TableProblem or
    OSError."""
    csv_table = params.table_format() == CSV_TABLE
    records = _csv_records(params.table) if csv_table else _jsonl_records(params.table)
    key = params.key
    chosen = params.fields
    rows: Rows = {}
    first_line: dict[object, int] = {}
    for number, record in records:
        if csv_table and number == 0:
            for column in key + tuple(column for column, _ in chosen or ()):
                if column not in record:
                    kind = "key column" if column in key else "column"
                    raise TableProblem(f"the header has no {kind} '{column}'")
            continue
        parts: list[str] = []
        for column in key:
            if column not in record:
                raise TableProblem(f"line {number}: no key column '{column}'")
            part = key_text(record[column])
            if part is None:
                raise TableProblem(f"line {number}: key column '{column}' must be text or a whole number")
            parts.append(part)
        row_key: object = parts[0] if len(parts) == 1 else tuple(parts)
        if row_key in first_line:
            raise TableProblem(f"line {number}: duplicate key (the same as line {first_line[row_key]})")
        if len(rows) >= params.max_rows:
            raise TableProblem(f"line {number}: more than max_rows ({params.max_rows}) rows; "
                               "raise max_rows or make the table smaller")
        first_line[row_key] = number
        if chosen is None:
            added: Event = {name: value for name, value in record.items() if name not in key}
        else:
            added = {new: record[column] for column, new in chosen if column in record}
        rows[row_key] = added
    return rows


class FileTable(TableSource):
    def __init__(self, params: LookupParams, where: str, clock: Clock) -> None:
        super().__init__()
        self.params = params
        self.where = where  # "node 'x' (lookup)", for log lines
        self.clock = clock
        self.check_every_s = CHECK_EVERY_S
        try:
            self.loaded = signature(params.table)
            self.rows = load_rows(params)
        except OSError as exc:
            raise NodeFailure(f"{where}: cannot read table {params.table}: {exc.strerror or exc}") from None
        except (TableProblem, UnicodeDecodeError, csv.Error) as exc:
            raise NodeFailure(f"{where}: table {params.table}: {exc}") from None
        self.next_check = clock.now() + self.check_every_s
        self.failed: Signature | None = None  # a version that could not be loaded: not tried again
        self.lock = threading.Lock()
        self.reloaded: tuple[Signature, Rows] | None = None  # rows a reload finished, to take
        self.loading = False

    def describe(self) -> str:
        return f"table {self.params.table}"

    def current(self) -> Rows:
        if self.reloaded is not None:
            with self.lock:
                done, self.reloaded = self.reloaded, None
            if done is not None:
                self.loaded, self.rows = done  # the whole new table at once
        now = self.clock.now()
        if now >= self.next_check and not self.loading:
            self.next_check = now + self.check_every_s
            self._check()
        return self.rows

    def _check(self) -> None:
        try:
            seen = signature(self.params.table)
        except OSError:
            seen = None  # gone for now (replaced by a rename?): keep the table, look again later
        if seen is None or seen == self.loaded or seen == self.failed:
            return
        self.loading = True
        threading.Thread(target=self._reload, args=(seen,), name=f"lookup {self.params.table}", daemon=True).start()

    def _reload(self, seen: Signature) -> None:
        try:
            rows = load_rows(self.params)
            after = signature(self.params.table)
            if after != seen:
                return  # still being written: the next check reads it again
            with self.lock:
                self.reloaded = (seen, rows)
        except (OSError, TableProblem, UnicodeDecodeError, csv.Error) as exc:
            self.failed = seen
            LOG.warning(f"{self.where}: reloading table {self.params.table} failed, the previous table stays: {exc}")
        finally:
            self.loading = False


def make_lookup(ctx: NodeContext) -> Transform:
    params = expect(ctx.params, LookupParams)
    where = f"node '{ctx.name}' (lookup)"
    return Lookup(ctx, FileTable(params, where, ctx.clock))
