"""The `lookup` node: enriches each event with the row of a reference table its key picks.

The engine never opens files: the table comes from a `TableSource` the factory builds
(adapters/io/files/lookup_table.py reads CSV and JSON Lines files and reloads them when
they change; adapters/io/postgres/lookup_query.py runs a query again every `refresh`).
`TableSource.current()` is asked once per batch; a reload replaces the whole
mapping at once, so every event of a batch, and every event at all, is enriched from one
version of the table, never a mix.

Keys compare as text: a key value in a table or an event is text, or a whole number (which
stands for its decimal text, so an event's `42` finds the CSV row `42`); any other value
(a boolean, a fraction, null, a list) never finds a row. Each row is stored as the mapping
of the fields it adds, already selected and renamed, so enriching is one dict merge: the
table's fields replace event fields of the same name.
"""

from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from engine.fused_code import CodeWriter, Member, MemberCode
from engine.node import Batch, Event, Failures, NodeContext, Transform
from engine.params import NO_PAIRS, Pairs, Raw, expect, names, text_of, texts, whole

KEEP: Final = "keep"  # an event without a row goes on unchanged
DROP: Final = "drop"  # ... is dropped
ERROR: Final = "error"  # ... is a failed event for `on_error`
MISSING_CHOICES: Final = (KEEP, DROP, ERROR)
CSV_TABLE: Final = "csv"
JSONL_TABLE: Final = "jsonl"
DEFAULT_MAX_ROWS: Final = 1_000_000
DEFAULT_REFRESH: Final = "1m"  # how often a query table is read again

Rows = dict[object, Event]  # key (text, or a tuple of texts) -> the fields the row adds


@dataclass(frozen=True)
class LookupParams:
    table: str  # the table file, relative to the working directory (as `file.read`'s path)
    key: tuple[str, ...]  # fields of the event, and columns of the table, of the same names
    # Column -> the field it becomes; None: every column but the key columns, named as they are.
    fields: Pairs | None = None
    on_missing: str = KEEP
    max_rows: int = DEFAULT_MAX_ROWS
    format: str = ""  # csv | jsonl; "": by the file name (`.csv` is CSV, anything else JSON Lines)
    # Instead of `table`: a PostgreSQL query whose rows are the table, run again every `refresh`.
    query: str = ""
    dsn: str = ""  # where `query` runs (secret: only its password is ever masked)
    refresh: str = DEFAULT_REFRESH

    def table_format(self) -> str:
        if self.format:
            return self.format
        return CSV_TABLE if self.table.lower().endswith(".csv") else JSONL_TABLE


def parse_lookup(raw: Raw) -> LookupParams:
    fields = raw.get("fields")
    chosen: Pairs | None = None
    if isinstance(fields, list):
        chosen = tuple((name, name) for name in texts(raw, "fields"))
    elif isinstance(fields, dict):
        chosen = tuple((str(k), str(v)) for k, v in fields.items()) or NO_PAIRS
    on_missing = text_of(raw, "on_missing", KEEP)
    max_rows = whole(raw, "max_rows", DEFAULT_MAX_ROWS)
    return LookupParams(text_of(raw, "table"), names(raw, "key"), chosen,
                        on_missing if on_missing in MISSING_CHOICES else KEEP,
                        max_rows if max_rows > 0 else DEFAULT_MAX_ROWS, text_of(raw, "format"),
                        text_of(raw, "query"), text_of(raw, "dsn"), text_of(raw, "refresh", DEFAULT_REFRESH))


def key_text(value: object) -> str | None:
    """One key value as the table compares it: text as it is, a whole number as its decimal
    text; None (never found) for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def key_of(event: Event, fields: tuple[str, ...]) -> object:
    """The table key of `event` (a text for one key field, a tuple for several); None when
    a key value cannot be one."""
    if len(fields) == 1:
        return key_text(event.get(fields[0]))
    parts: list[str] = []
    for field in fields:
        part = key_text(event.get(field))
        if part is None:
            return None
        parts.append(part)
    return tuple(parts)


@mypyc_attr(allow_interpreted_subclasses=True)
class TableSource:
    """Where a lookup's rows come from (a file, a query). Built by adapters: the engine
    opens nothing itself."""

    def current(self) -> Rows:
        """The rows to enrich the next batch with; a source that reloads returns the new
        mapping once it is complete (the old one is never changed)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The table as messages name it (its file)."""
        return "table"


class Lookup(Transform):
    def __init__(self, ctx: NodeContext, source: TableSource) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, LookupParams)
        self.source = source
        self.key = params.key
        self.on_missing = params.on_missing

    def failure(self) -> str:
        """An event whose key finds no row, with `on_missing: error` (the key is not shown)."""
        fields = ", ".join(f"'{f}'" for f in self.key)
        return f"no row in {self.source.describe()} for the event's key {fields}"

    def rows_now(self) -> Rows:
        """The table for the next batch (the fused loop asks before each batch)."""
        return self.source.current()

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        rows = self.source.current()
        key = self.key
        on_missing = self.on_missing
        for index, event in enumerate(batch):
            row = rows.get(key_of(event, key))
            if row is not None:
                out.append({**event, **row})
                continue
            if on_missing == KEEP:
                out.append(event)
            elif on_missing == ERROR and not failures.event_failed(event, self.failure(), outs):
                return index  # offered again after the retry backoff
        return len(batch)


class LookupCode(MemberCode):
    def counts_passes(self) -> bool:
        return True

    def before(self, w: CodeWriter, member: Member) -> None:
        j = member.index
        w.line(f"_p{j} = 0")
        w.line(f"_rows{j} = _table{j}()  # one version of the table for the whole batch")
        w.counters.append(f"_p{j}")

    def body(self, w: CodeWriter, member: Member) -> None:
        _lookup(w, member)

    def scope(self, member: Member, node: object) -> dict[str, object]:
        if not isinstance(node, Lookup):
            return {}
        j = member.index
        return {f"_table{j}": node.rows_now, f"_keytext{j}": key_text, f"_str{j}": str}

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Lookup)
        return node.failure()


LOOKUP_CODE: Final = LookupCode()


def _lookup(w: CodeWriter, member: Member) -> None:
    params = expect(member.params, LookupParams)
    j = member.index
    if len(params.key) == 1:
        w.line(f"_k{j} = _event.get({params.key[0]!r})")
        w.line(f"if _k{j}.__class__ is not _str{j}:")
        w.line(f"    _k{j} = _keytext{j}(_k{j})")
    else:
        parts = ", ".join(f"_keytext{j}(_event.get({field!r}))" for field in params.key)
        w.line(f"_k{j} = ({parts},)")
        w.line(f"if None in _k{j}:")
        w.line(f"    _k{j} = None")
    w.line(f"_r{j} = _rows{j}.get(_k{j})")
    if params.on_missing == DROP:
        w.line(f"if _r{j} is None:")
        w.line("    continue")
    elif params.on_missing == ERROR:
        w.line(f"if _r{j} is None:")
        w.line(f"    _fail({j}, _event, _Exception())")
        w.line("    continue")
    # An event without a row (`keep`) goes on as it is.
    w.line(f"{'elif' if params.on_missing != KEEP else 'if'} _r{j} is not None:")
    if member.owned:
        w.line(f"    _event.update(_r{j})")
    else:
        w.line(f"    _event = {{**_event, **_r{j}}}")
    w.line(f"_p{j} += 1")
    # The row's fields are unknown here: later members read them from the event.
    w.known.clear()
