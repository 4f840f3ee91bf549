"""reactivex 6.1.0: from_iterable -> map -> filter -> group_by -> (sum per group) -> to_dict.

`group_by` + `sum` is Rx's keyed aggregation. Everything runs synchronously on the
default CurrentThreadScheduler; `run()` blocks until the sequence completes.
"""

from typing import Any

import reactivex
from _common import Event, add_cents, arguments, events, is_buy, write_totals
from reactivex import Observable
from reactivex import operators as ops
from reactivex.observable import GroupedObservable


def user_of(event: Event) -> int:
    user: int = event["user"]
    return user


def cents_of(event: Event) -> float:
    cents: float = event["amount_cents"]
    return cents


def group_total(group: GroupedObservable[int, Event]) -> Observable[tuple[int, float]]:
    """One (user, total) pair when the user's group completes."""
    return group.pipe(ops.sum(cents_of), ops.map(lambda total: (group.key, total)))


def first(pair: tuple[int, float]) -> int:
    return pair[0]


def second(pair: tuple[int, float]) -> float:
    return pair[1]


def main() -> None:
    count, path = arguments()
    stream: Observable[Event] = reactivex.from_iterable(events(count))
    totals: dict[Any, Any] = stream.pipe(
        ops.map(add_cents),
        ops.filter(is_buy),
        ops.group_by(user_of),
        ops.flat_map(group_total),
        ops.to_dict(first, second),
    ).run()
    write_totals(path, totals)


if __name__ == "__main__":
    main()
