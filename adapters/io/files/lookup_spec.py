"""The spec of `lookup`: its table is a file this package reads (lookup_table.py); the node
itself, and its part of fused loops, are the engine's (engine/lookup.py)."""

from typing import Final

from adapters.io.files.lookup_table import make_lookup
from engine.lookup import CSV_TABLE, DEFAULT_MAX_ROWS, JSONL_TABLE, KEEP, LOOKUP_CODE, MISSING_CHOICES, parse_lookup
from engine.spec import FORWARDED, STEP, TRANSFORM, FusionRole, NodeSpec, param, params_schema

NAME: Final[dict[str, object]] = {"type": "string", "minLength": 1}

LOOKUP: Final = NodeSpec(
    name="lookup",
    kind=TRANSFORM,
    summary="Enriches each event with the fields of the row its key picks in a reference table (a CSV or "
            "JSON Lines file, reloaded when the file changes: an event sees the old or the new table, "
            "never a mix). Keys compare as text (a whole number as its digits); the table's fields "
            "replace event fields of the same name. Memory: about 200 bytes per row plus about 60 "
            "bytes and the text per value (a row of a short key and two short text values: about 400 bytes, "
            "so 1,000,000 rows take about 400 MB; measured by tests/test_lookup.py).",
    params=params_schema({
        "table": param(NAME, "The table file, relative to the working directory (as `file.read`'s path). "
                       "CSV has a header row and its values stay text; JSON Lines keeps JSON's types. Checked for "
                       "changes at most once a second and read again in the background: replace it by renaming "
                       "a complete file over it; a reload that fails keeps the previous table and logs one line.",
                       "graphs/data/networks.csv"),
        "format": param({"enum": [CSV_TABLE, JSONL_TABLE]},
                        "How the table is encoded. Omitted: CSV for a `.csv` file, JSON Lines otherwise.",
                        CSV_TABLE),
        "key": param({"anyOf": [NAME, {"type": "array", "minItems": 1, "items": NAME}]},
                     "The field or fields that pick a row: the same names in the event and the table.",
                     "network"),
        "fields": param({"anyOf": [{"type": "array", "items": NAME},
                                   {"type": "object", "additionalProperties": NAME}]},
                        "The columns to add, as a list, or a mapping of column -> the field it becomes. "
                        "Omitted: every column but the key columns.",
                        {"owner": "network_owner", "country": "country"}),
        "on_missing": param({"enum": list(MISSING_CHOICES)},
                            "An event whose key finds no row: `keep` it unchanged, `drop` it, or `error` "
                            "(a failed event for `on_error`).", "drop", default=KEEP),
        "max_rows": param({"type": "integer", "minimum": 1},
                          "A table with more rows cannot be loaded (the graph does not start; a reload "
                          "keeps the previous table).", 50000, default=DEFAULT_MAX_ROWS),
    }, required=("table", "key")),
    factory=make_lookup,
    parse=parse_lookup,
    # The event it received (no row, `keep`), or a new one; fused on an event nobody else
    # holds, that event with the row's fields set.
    fusion=FusionRole(STEP, FORWARDED, LOOKUP_CODE),
    example="type: lookup\nfrom: requests\nwith:\n  table: graphs/data/networks.csv\n  key: network\n"
            "  fields: [owner, country]\n  on_missing: keep",
)
