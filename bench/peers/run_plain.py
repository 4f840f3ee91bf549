"""The reference: the pipeline as a hand-written Python loop.

Written the way a user would: one function (so names are fast locals, not module
globals), the event built as a dict, the map step as a field assignment, the filter as an
`if`, the aggregate as a dict of running sums. Stdlib only, so the parent can also import
`totals()` to compute the expected answer in-process.
"""

import json
import sys
from typing import Any


def totals(count: int) -> dict[int, int]:
    sums: dict[int, int] = {}
    for i in range(count):
        event: dict[str, Any] = {"id": i, "user": i % 1000, "amount": float(i % 97), "kind": "buy" if i % 3 else "sell"}
        event["amount_cents"] = int(event["amount"] * 100)
        if event["kind"] == "buy":
            user = event["user"]
            sums[user] = sums.get(user, 0) + event["amount_cents"]
    return sums


def main() -> None:
    count, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "w", encoding="utf-8") as out:
        json.dump({str(user): total for user, total in totals(count).items()}, out)


if __name__ == "__main__":
    main()
