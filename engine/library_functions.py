"""The expression functions of the hashing, type, collection and time groups, as one table.

Kept out of `engine.functions` (which these modules import for its errors and guards);
`compile_expr.function_scope` adds this table to that one, as it adds the math functions.
"""

import random
from collections.abc import Callable

from engine import collection_functions as c
from engine import hash_functions as h
from engine import time_functions as t
from engine import type_functions as k


def library_functions(rng: random.Random) -> dict[str, Callable[..., object]]:
    """Name -> implementation; `uuid4` is bound to the node's random generator, as `rand` is."""
    return {
        "sha256": h.sha256_hex, "sha1": h.sha1_hex, "md5": h.md5_hex, "stable_hash": h.stable_hash_of,
        "uuid4": h.Uuid4(rng),
        "type_of": k.type_of, "is_number": k.is_number, "is_string": k.is_string, "to_bool": k.to_bool,
        "keys": c.keys, "values": c.values, "merge": c.merge, "get": c.get, "sorted": c.sorted_list,
        "unique": c.unique, "flatten": c.flatten, "sum_of": c.sum_of, "min_of": c.min_of, "max_of": c.max_of,
        "to_unix_ms": t.to_unix_ms, "from_unix_ms": t.from_unix_ms, "truncate_time": t.truncate_time,
        # Replaces the UTC-only `format_time` of engine.functions: the same answers without a zone.
        "format_time": t.format_time_in,
    }
