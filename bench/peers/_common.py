"""What the peer scripts share: the generated events, the user's two functions and the
command line. The plain loop does not use this module: it inlines everything, as a
person writing a loop would."""

import json
import sys
from collections.abc import Iterator
from typing import Any

Event = dict[str, Any]


def events(count: int) -> Iterator[Event]:
    """The reference events, built one at a time (never a list of a million dicts)."""
    for i in range(count):
        yield {"id": i, "user": i % 1000, "amount": float(i % 97), "kind": "buy" if i % 3 else "sell"}


def add_cents(event: Event) -> Event:
    # A new dict, as Headrace's `map` builds one: streaming APIs discourage mutating
    # an event another operator may still hold.
    return {**event, "amount_cents": int(event["amount"] * 100)}


def is_buy(event: Event) -> bool:
    return event["kind"] == "buy"


def arguments() -> tuple[int, str]:
    """`COUNT OUT.json` from the command line."""
    if len(sys.argv) < 3:
        raise SystemExit(f"usage: {sys.argv[0]} COUNT TOTALS.json [options]")
    return int(sys.argv[1]), sys.argv[2]


def write_totals(path: str, totals: dict[Any, Any]) -> None:
    """JSON object keys are strings; the parent compares them as such."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump({str(user): total for user, total in totals.items()}, out)
