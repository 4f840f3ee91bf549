"""Stored snapshots of what a test's ports emitted: `__snapshots__/FILE.snap` beside the
test file, one JSON document per test file.

The layout is meant for code review: tests and ports sorted by name, one event per line
with its fields sorted (event order is kept: it is part of what a graph does).
"""

import json
from pathlib import Path

from engine.node import Event

Snapshots = dict[str, dict[str, list[Event]]]  # test name -> expectation key -> events


def snapshot_path(test_file: str) -> Path:
    path = Path(test_file)
    return path.parent / "__snapshots__" / (path.name + ".snap")


def read_snapshots(test_file: str) -> tuple[Snapshots, str]:
    """The stored snapshots, and a problem reading them ("" when fine or absent)."""
    path = snapshot_path(test_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except (OSError, ValueError) as exc:
        return {}, f"cannot read the snapshot file {path}: {exc}; run `engine test --update` to write it anew"
    if not isinstance(data, dict):
        return {}, f"the snapshot file {path} is not a JSON object; run `engine test --update` to write it anew"
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}, ""


def render(snapshots: Snapshots) -> str:
    lines = ["{"]
    tests = sorted(snapshots)
    for t, test in enumerate(tests):
        lines.append(f"  {json.dumps(test, ensure_ascii=False)}: {{")
        keys = sorted(snapshots[test])
        for k, key in enumerate(keys):
            events = snapshots[test][key]
            rows = [json.dumps(e, ensure_ascii=False, sort_keys=True, default=str) for e in events]
            body = "[]" if not rows else "[\n" + ",\n".join(f"      {row}" for row in rows) + "\n    ]"
            lines.append(f"    {json.dumps(key, ensure_ascii=False)}: {body}" + ("," if k < len(keys) - 1 else ""))
        lines.append("  }" + ("," if t < len(tests) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_snapshots(test_file: str, snapshots: Snapshots) -> str:
    """Writes the file when its text changes; returns a problem or ""."""
    path = snapshot_path(test_file)
    text = render(snapshots)
    try:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return ""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".snap.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        return f"cannot write the snapshot file {path}: {exc.strerror or exc}"
    return ""
