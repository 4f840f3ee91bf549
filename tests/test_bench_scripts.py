"""The benchmark scripts run and check their own answers (tiny sizes: seconds, not numbers)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def row(output: str, label: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(label))
    return [cell.strip() for cell in line.split("|")]


def test_peers_bench_headrace_and_plain_agree() -> None:
    out = run("bench/peers_bench.py", "--only", "headrace,plain", "--quick", "--repeat", "1")
    assert "runtime" in out and "events/s" in out and "totals OK" in out
    assert row(out, "plain Python loop")[-1] == "yes"
    assert row(out, "Headrace (engine run)")[-1] == "yes"
    assert "compiled" in out or "interpreted" in out


def test_edge_bench_covers_every_policy() -> None:
    out = run("bench/edge_bench.py", "--count", "20480", "--repeat", "1")
    for label in ("deque extend + list drain (reference)", "block", "drop_newest", "drop_oldest", "latest", "coalesce"):
        assert len(row(out, label)) == 4, label
