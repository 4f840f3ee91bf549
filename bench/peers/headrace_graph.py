"""Headrace: the reference pipeline as a YAML graph, run with `engine run` by the parent.

Headrace needs no script of its own: a user writes this file and runs `engine run`, so the
parent times exactly that command. `file.write` produces JSON Lines (`{"user": .., "total":
..}` per line); `totals_from_jsonl` turns them into the totals JSON every runtime writes.
"""

import json
from pathlib import Path

GRAPH = """\
version: 1
name: peers_bench
defaults:
  edge: {{capacity: 1024, policy: block}}
nodes:
  events:
    type: generate
    with:
      count: {count}
      fields: {{id: i, user: i % 1000, amount: float(i % 97), kind: "'buy' if i % 3 else 'sell'"}}
  priced:
    type: map
    from: events
    with: {{set: {{amount_cents: "int(amount * 100)"}}}}
  buys:
    type: filter
    from: priced
    with: {{where: "kind == 'buy'"}}
  per_user:
    type: aggregate
    from: buys
    with: {{by: user, fields: {{total: sum(amount_cents)}}}}
  out:
    type: file.write
    from: per_user
    with: {{path: {path}, format: jsonl}}
"""


def write_graph(folder: Path, count: int, output: Path) -> Path:
    """The graph for `count` events writing to `output`; returns the graph file's path."""
    graph = folder / f"peers_bench_{count}.yaml"
    # A JSON string is a valid YAML scalar: safe for any temp path.
    graph.write_text(GRAPH.format(count=count, path=json.dumps(str(output))), encoding="utf-8")
    return graph


def totals_from_jsonl(jsonl: Path, totals_json: Path) -> None:
    totals: dict[str, object] = {}
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            totals[str(row["user"])] = row["total"]
    totals_json.write_text(json.dumps(totals), encoding="utf-8")


if __name__ == "__main__":
    print(GRAPH.format(count=1000, path='"totals.jsonl"'), end="")
