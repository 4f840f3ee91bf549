"""What `bench/shapes.py` needs around each run: child processes measured with `wait4` (through
bench/shape_spawn.py), and a comparison of two runs' output files by value."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

try:
    import orjson
except ImportError:  # the comparison falls back to json; the orjson rows are skipped
    orjson = None

SPAWNER = Path(__file__).resolve().parent / "shape_spawn.py"


class Spawner:
    """bench/shape_spawn.py, started once: it starts every child, so that a child's peak RSS
    is its own and not this process's (see that module)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(SPAWNER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()


class Child:
    """One process started by the spawner; `seconds` and `peak_mib` are set once it exited."""

    def __init__(self, spawner: Spawner, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.spawner = spawner
        handle, name = tempfile.mkstemp(prefix="shape_stderr_")
        os.close(handle)  # the spawner opens it for the child
        self.err = Path(name)
        self.status: int | None = None
        self.seconds = 0.0
        self.peak_mib = 0.0
        answer = spawner.ask(op="start", command=command, cwd=str(cwd), env=env, stderr=str(self.err))
        self.pid: int | None = answer.get("pid")
        self.error: str = answer.get("error", "")

    def exited(self) -> bool:
        """Without waiting: has it exited (or never started)?"""
        if self.pid is None or self.status is not None:
            return True
        return bool(self.spawner.ask(op="exited", pid=self.pid)["exited"])

    def wait(self, timeout_s: float) -> bool:
        """Waits for the exit; after `timeout_s` kills the child and returns False."""
        if self.pid is None:
            self.status = -1
            return True
        answer = self.spawner.ask(op="wait", pid=self.pid, timeout=timeout_s)
        self.status = answer["status"]
        self.seconds = answer["seconds"]
        # ru_maxrss is KiB on Linux, bytes on macOS.
        self.peak_mib = answer["peak_kib"] / (1024 * 1024 if sys.platform == "darwin" else 1024)
        return not answer["timed_out"]

    def interrupt(self) -> None:
        if self.pid is not None and self.status is None:
            self.spawner.ask(op="signal", pid=self.pid, signal=int(signal.SIGINT))

    def stderr_tail(self) -> str:
        tail = self.error or self.err.read_text(errors="replace").strip()[-1500:]
        self.err.unlink(missing_ok=True)
        return tail


def canonical(line: bytes) -> bytes:
    """One JSON line as a value, written back with sorted keys: equal values, equal bytes;
    `1` and `1.0` stay different."""
    if orjson is not None:
        text: bytes = orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)
        return text
    return json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as lines:
        yield from (line for line in lines if line.strip())


def _multiset(path: Path) -> tuple[int, int]:
    """(lines, sum of the lines' 128-bit hashes): the same for any order of the same values."""
    count = total = 0
    for line in _lines(path):
        count += 1
        total += int.from_bytes(hashlib.blake2b(canonical(line), digest_size=16).digest(), "big")
    return count, total % (1 << 128)


def same_output(expected: Path, got: Path, ordered: bool) -> str:
    """'' when `got` holds the values of `expected` (in the same order if `ordered`), else
    what differs. Streams both files: a 10M-line output is never held in memory."""
    if not got.exists():
        return f"{got.name} was not written"
    if not ordered:
        want, have = _multiset(expected), _multiset(got)
        if want == have:
            return ""
        return f"{got.name}: {have[0]:,} lines, {want[0]:,} expected; the values differ (order ignored)"
    for number, (want_line, have_line) in enumerate(zip_longest(_lines(expected), _lines(got)), 1):
        if want_line is None or have_line is None:
            return f"{got.name}: line {number}: {'extra line' if want_line is None else 'ends early'}"
        # Equal bytes are equal values; different bytes may still be (key order, spacing).
        if want_line != have_line and canonical(want_line) != canonical(have_line):
            return f"{got.name}: line {number}: {have_line[:160]!r}, expected {want_line[:160]!r}"
    return ""
