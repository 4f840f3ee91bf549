"""The inputs of `bench/shapes.py`: N seeded events as JSON Lines and as CSV.

Each event has six fields, about 107 bytes as a JSON line:

    {"id": 17, "user": "user0421", "region": "eu-west-1", "ts": 1767225600.17, "amount": 312.58, "qty": 7}

- `id`: 0 .. N-1, unique (the `dedupe` key);
- `user`: one of 1,000 keys, so keyed state stays the same size whatever N is;
- `region`: one of 5 strings;
- `ts`: epoch seconds, 100 events a second, never decreasing (event-time windows close in
  order and nothing is late);
- `amount`: a float with two decimals in [0, 500); `qty`: an int in [1, 9].

The same seed gives the same bytes on every run, and the first M events of N are the events
of M. Usage:

    python bench/shape_data.py 1000000 /tmp/shapes    # writes events.jsonl and events.csv
"""

import random
import sys
from collections.abc import Iterator
from pathlib import Path

SEED = 20260101
KEYS = 1000
REGIONS = ("eu-west-1", "eu-north-1", "us-east-1", "us-west-2", "ap-south-1")
START_TS = 1767225600.0  # 2026-01-01T00:00:00Z
EVENTS_PER_SECOND = 100
COLUMNS = ("id", "user", "region", "ts", "amount", "qty")
JSONL_NAME = "events.jsonl"
CSV_NAME = "events.csv"

Row = tuple[int, str, str, float, float, int]


def rows(count: int, seed: int = SEED) -> Iterator[Row]:
    """The events as tuples in COLUMNS order, one at a time (never a list of N)."""
    rng = random.Random(seed)
    users = [f"user{k:04d}" for k in range(KEYS)]
    pick = rng.randrange
    for i in range(count):
        # Rounded once, so the text written is the float every reader parses back.
        ts = round(START_TS + i / EVENTS_PER_SECOND, 2)
        yield i, users[pick(KEYS)], REGIONS[pick(len(REGIONS))], ts, pick(50_000) / 100, pick(1, 10)


def write_jsonl(path: Path, count: int, seed: int = SEED) -> Path:
    # Written by hand rather than with json.dumps: the values need no escaping, and a float's
    # repr is exactly what json.dumps writes for it.
    with path.open("w", encoding="utf-8") as out:
        out.writelines(
            f'{{"id": {i}, "user": "{user}", "region": "{region}", "ts": {ts!r}, "amount": {amount!r}, '
            f'"qty": {qty}}}\n'
            for i, user, region, ts, amount, qty in rows(count, seed))
    return path


def write_csv(path: Path, count: int, seed: int = SEED) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(COLUMNS) + "\n")
        out.writelines(f"{i},{user},{region},{ts!r},{amount!r},{qty}\n"
                       for i, user, region, ts, amount, qty in rows(count, seed))
    return path


def write_inputs(folder: Path, count: int, seed: int = SEED) -> tuple[Path, Path]:
    """(events.jsonl, events.csv) in `folder`, created if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_jsonl(folder / JSONL_NAME, count, seed), write_csv(folder / CSV_NAME, count, seed)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} COUNT FOLDER")
    for written in write_inputs(Path(sys.argv[2]), int(sys.argv[1])):
        print(written)
