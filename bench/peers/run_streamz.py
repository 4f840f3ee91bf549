"""streamz 0.6.6: Stream -> map -> filter -> accumulate (a dict of sums).

The synchronous use from streamz's docs: build the stream, then `emit` each event from a
loop. streamz has no keyed sum, so `accumulate` keeps the dict of running totals.
"""

from typing import Any

from _common import add_cents, arguments, events, is_buy, write_totals
from streamz import Stream


def add_to_totals(totals: dict[int, int], event: dict[str, Any]) -> dict[int, int]:
    user = event["user"]
    totals[user] = totals.get(user, 0) + event["amount_cents"]
    return totals


def main() -> None:
    count, path = arguments()
    source = Stream()
    per_user = source.map(add_cents).filter(is_buy).accumulate(add_to_totals, start={})
    emit = source.emit
    for event in events(count):
        emit(event)
    write_totals(path, per_user.state)


if __name__ == "__main__":
    main()
