"""The guards of list comprehensions, `[expr for x in items if cond]`.

The rewrite (engine/expr_rewrite.py) turns a comprehension into
`_g_listed(expr for x in _g_items(items) if cond)`: `items_of` refuses what is not a list,
and `listed` builds the result while counting it against MAX_SEQUENCE_LENGTH as it grows
(each item counts one, plus its characters and nested items, as `*` counts them), so
`[s * 1000 for s in names]` stops at the limit instead of first filling memory.
Comprehensions do not nest inside another's element or condition (the checker refuses it),
so the work is linear in the list.
"""

from collections.abc import Iterable
from typing import Any, Final

from engine.functions import MAX_SEQUENCE_LENGTH, ExprLimitError, type_name, weight

_FLAT: Final = frozenset({int, float, bool, type(None)})


def items_of(value: object) -> list[Any] | tuple[Any, ...]:
    """What a comprehension loops over: a list (`keys(m)` gives a mapping's keys)."""
    if isinstance(value, (list, tuple)):
        return value
    hint = " (use keys(m) or values(m))" if isinstance(value, dict) else ""
    raise TypeError(f"a comprehension needs a list to loop over, not {type_name(value)}{hint}")


def listed(produced: Iterable[object]) -> list[object]:
    out: list[object] = []
    total = 0
    for item in produced:
        total += 1
        if type(item) not in _FLAT:
            total += weight(item, MAX_SEQUENCE_LENGTH - total)
        if total > MAX_SEQUENCE_LENGTH:
            raise ExprLimitError(f"a comprehension would give more than {MAX_SEQUENCE_LENGTH:,} items")
        out.append(item)
    return out
