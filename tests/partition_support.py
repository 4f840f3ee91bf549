"""Graphs with partitioned nodes for the executor tests: the shipped example resized, and
generated chains of keyed and stateless nodes, each with its unpartitioned twin.

What partitioning promises (docs/scale-out.md): the same events come out as without it (a
multiset), and within one key in the same order; across keys, instances interleave.
"""

import json
import re
from collections.abc import Sequence

from hypothesis import strategies as st

from tests.conftest import ROOT

USER_TOTALS = (ROOT / "graphs" / "user_totals.yaml").read_text()
KEY = "user"

# One step of a generated chain: (node type, its `with:` block).
STEPS: dict[str, str] = {
    "map": '{set: {amount: "(amount * 7 + seq) % 23"}}',
    "filter": '{where: "amount % 4 != 1"}',
    "aggregate": '{by: user, fields: {amount: "sum(amount)", seq: "max(seq)", n: "count()"}}',
    # Every event a dedupe sees is within its window (<= 400 events): a partitioned dedupe
    # remembers `window` keys per instance, more than one instance would in all.
    "dedupe": "{key: [user, amount]}",
}


def user_totals(count: int, parallelism: int | None = 2, sink: str = "test.record") -> str:
    """graphs/user_totals.yaml with `count` purchases, both stages at `parallelism` (None:
    unpartitioned, the reference) and its file sink swapped for `sink`."""
    text = USER_TOTALS.replace("count: 200000", f"count: {count}")
    if parallelism is None:
        text = re.sub(r"\n    parallelism: \d+", "", text)
        text = text.replace("from: {node: purchases, edge: {partition_by: user}}", "from: purchases")
    else:
        text = text.replace("parallelism: 2", f"parallelism: {parallelism}")
    out = text.index("  out:\n")
    return text[:out] + f"  out:\n    type: {sink}\n    from: rounded\n"


def chain_graph(count: int, keys: int, steps: Sequence[tuple[str, int, bool]], partitioned: bool = True) -> str:
    """A source of `count` events over `keys` users, then `steps` (type, parallelism, join)
    in a line into a `test.record` sink `out`. A step with parallelism > 1 is partitioned by
    user, or, when `join` and its predecessor has the same parallelism, runs in that
    predecessor's stage. `partitioned=False`: the same graph without any parallelism."""
    lines = [
        "version: 2", "name: chain", "nodes:",
        "  src:", "    type: generate",
        f"    with: {{count: {count}, fields: {{user: \"'u' + str(i % {keys})\", amount: \"i % 13\", seq: i}}}}",
    ]
    previous, previous_n = "src", 1
    for k, (kind, n, join) in enumerate(steps):
        name = f"s{k}"
        lines += [f"  {name}:", f"    type: {kind}"]
        if partitioned and n > 1 and not (join and n == previous_n):
            lines.append(f"    from: {{node: {previous}, edge: {{partition_by: {KEY}}}}}")
        else:
            lines.append(f"    from: {previous}")
        if partitioned and n > 1:
            lines.append(f"    parallelism: {n}")
        lines.append(f"    with: {STEPS[kind]}")
        previous, previous_n = name, (n if partitioned else 1)
    lines += ["  out:", "    type: test.record", f"    from: {previous}"]
    return "\n".join(lines) + "\n"


steps_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(STEPS)), st.sampled_from([1, 2, 3]), st.booleans()), min_size=1, max_size=4)


def as_multiset(events: list[dict[str, object]]) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in events)


def per_key(events: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    """Each user's events, in the order they came out."""
    out: dict[str, list[dict[str, object]]] = {}
    for e in events:
        out.setdefault(json.dumps(e.get(KEY)), []).append(e)
    return out


def assert_same_results(got: list[dict[str, object]], expected: list[dict[str, object]]) -> None:
    assert as_multiset(got) == as_multiset(expected)
    assert per_key(got) == per_key(expected)
