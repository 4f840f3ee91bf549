"""Validation speed: a 1,000-node graph and a directory of 500 graph files.

Run: python bench/validate_bench.py [--repeat N]

Each case is timed three ways in one process run, side by side:
  parse      ruamel.yaml composing the same text (the floor: no loader can be faster
             than reading the YAML it validates)
  load       the whole loader: parse, interpolate, JSON Schema, semantic checks, compile
  validate   `engine validate` as a user runs it: a fresh process, start-up included
The best of N repeats is reported.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.cli.registry import default_registry  # noqa: E402
from loader import load_directory, load_text  # noqa: E402


def big_graph(nodes: int) -> str:
    """A source, then `nodes - 2` transforms cycling through map/filter/route/aggregate, then a sink."""
    lines = ["version: 1", "name: big", "defaults:", "  edge: {capacity: 512, policy: block}", "nodes:",
             "  n0:", "    type: generate",
             "    with: {count: 100, fields: {id: i, user: i % 10, amount: float(i % 97),",
             "                                kind: \"'buy' if i % 3 else 'sell'\"}}"]
    previous = "n0"
    for k in range(1, nodes - 1):
        name = f"n{k}"
        kind = k % 4
        if kind == 0:
            body = ["    type: map", f"    from: {previous}", "    with:",
                    f"      set: {{a{k}: \"int(amount * 100) + {k}\", u{k}: lower(str(user))}}"]
        elif kind == 1:
            body = ["    type: filter", f"    from: {{node: {previous}, capacity: 256, policy: drop_oldest}}",
                    f"    with: {{where: \"kind == 'buy' and amount > {k % 50}\"}}"]
        elif kind == 2:
            body = ["    type: route", f"    from: {previous}",
                    f"    with: {{routes: {{big: \"amount > {k % 90}\", small: \"amount <= 5\"}}}}"]
            previous = f"{name}.big"
            lines += [f"  {name}:"] + body
            continue
        else:
            body = ["    type: map", f"    from: [{previous}]", "    with: {remove: [u0], rename: {id: ident}}"]
        lines += [f"  {name}:"] + body
        previous = name
    lines += [f"  n{nodes - 1}:", "    type: stdout", f"    from: {previous}"]
    return "\n".join(lines) + "\n"


def small_graph(index: int) -> str:
    return f"""\
version: 1
name: g{index}
nodes:
  src:
    type: file.read
    with: {{path: data/in{index}.jsonl}}
  priced:
    type: map
    from: src
    with: {{set: {{cents: "int(amount * 100)"}}}}
  buys:
    type: filter
    from: priced
    with: {{where: "kind == 'buy'"}}
  split:
    type: route
    from: buys
    with: {{routes: {{big: "cents > 1000"}}}}
  totals:
    type: aggregate
    from: split.big
    with: {{by: user, fields: {{total: "sum(cents)", n: "count()"}}}}
  out:
    type: file.write
    from: totals
    with: {{path: out/g{index}.jsonl}}
  rest:
    type: "null"
    from: [split.unmatched]
"""


def best(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "adapters.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"engine {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    registry = default_registry()
    rows: list[tuple[str, float, float, float]] = []

    text = big_graph(1000)
    result = load_text("big.yaml", text, registry, {})
    assert result.plan is not None and len(result.plan.nodes) == 1000, result.problems[:3]
    with tempfile.TemporaryDirectory() as tmp:
        big_file = Path(tmp) / "big.yaml"
        big_file.write_text(text)
        rows.append(("1,000-node graph",
                     best(args.repeat, lambda: YAML(typ="safe", pure=False).compose(text)),
                     best(args.repeat, lambda: load_text("big.yaml", text, registry, {})),
                     best(args.repeat, lambda: cli("validate", str(big_file)))))

        directory = Path(tmp) / "graphs"
        directory.mkdir()
        texts = [small_graph(i) for i in range(500)]
        for i, body in enumerate(texts):
            (directory / f"g{i}.yaml").write_text(body)
        results = load_directory(directory, registry, {})
        assert len(results) == 500 and all(r.ok and not r.problems for r in results)
        rows.append(("directory of 500 files",
                     best(args.repeat, lambda: [YAML(typ="safe", pure=False).compose(t) for t in texts]),
                     best(args.repeat, lambda: load_directory(directory, registry, {})),
                     best(args.repeat, lambda: cli("validate", str(directory)))))

    print(f"{'case':<24} {'parse (floor)':>14} {'load':>10} {'engine validate':>16}")
    for name, parse, load, validate in rows:
        print(f"{name:<24} {parse * 1000:>11.0f} ms {load * 1000:>7.0f} ms {validate * 1000:>13.0f} ms")


if __name__ == "__main__":
    main()
