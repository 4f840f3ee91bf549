"""The audit log: one JSON line per mutating control call, each line chained to the one before.

A record is `{"time", "principal", "peer"?, "method", "target", "result", "detail"?, "count"?,
"prev", "hash"}` (`peer` and `count` on refused calls only, see `refusals`):
`prev` is the previous line's `hash` ("0" * 64 on the first line) and `hash` is the SHA-256 of
the record's canonical JSON without `hash` (keys sorted, no spaces, UTF-8). Editing a line
breaks its hash; removing or reordering lines breaks the next line's `prev`. `verify` checks
a file; `engine audit verify FILE` is its command.
"""

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from adapters.atomic_file import fsync_directory
from adapters.control.auth import ControlSecurityError

GENESIS: Final = "0" * 64
_TAIL_CHUNK: Final = 64 * 1024


class AuditError(ControlSecurityError):
    """The audit log cannot be opened: the control plane does not start (one line, naming the setting)."""


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of `record` without its `hash` field."""
    body = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditLog:
    """Appends hash-chained records to `path` (one engine per file), continuing the chain the
    file already holds. Each record is flushed and fsynced before `record` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            with path.open("ab"):
                pass
            if created:
                fsync_directory(path.parent)
            self._last_hash, self._needs_newline = _tail(path)
        except OSError as exc:
            raise AuditError(f"HEADRACE_AUDIT_LOG: cannot open {path}: {exc.strerror or exc}") from None

    @property
    def last_hash(self) -> str:
        """The hash of the last record: the anchor to keep elsewhere to detect a truncated file."""
        return self._last_hash

    def record(self, principal: str, method: str, target: str, result: str, detail: str = "",
               peer: str = "", count: int = 0) -> None:
        """Append one record (`detail`, `peer` and `count` only when given). Raises OSError when
        it cannot be written (disk full, ...)."""
        with self._lock:
            entry: dict[str, Any] = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "principal": principal,
            }
            if peer:
                entry["peer"] = peer
            entry.update(method=method, target=target, result=result)
            if detail:
                entry["detail"] = detail
            if count:
                entry["count"] = count
            entry["prev"] = self._last_hash
            entry["hash"] = record_hash(entry)
            line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
            if self._needs_newline:  # a torn last line (a crash mid-write) stays a line of its own
                line = "\n" + line
            with self.path.open("ab") as out:
                out.write(line.encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            self._last_hash = entry["hash"]
            self._needs_newline = False


def _tail(path: Path) -> tuple[str, bool]:
    """The hash of the last well-formed record in `path` (GENESIS when there is none), and
    whether the file ends without a newline. Reads from the end, a chunk at a time."""
    with path.open("rb") as source:
        end = source.seek(0, os.SEEK_END)
        if end == 0:
            return GENESIS, False
        source.seek(end - 1)
        needs_newline = source.read(1) != b"\n"
        position, pending = end, b""
        while position > 0:
            start = max(0, position - _TAIL_CHUNK)
            source.seek(start)
            pending = source.read(position - start) + pending
            position = start
            lines = pending.split(b"\n")
            pending = lines[0] if position > 0 else b""  # maybe a partial line: read more before it
            candidates = lines[1:] if position > 0 else lines
            for raw in reversed(candidates):
                parsed = _parse(raw)
                if isinstance(parsed, dict):
                    return str(parsed["hash"]), needs_newline
    return GENESIS, needs_newline


def _parse(raw: bytes) -> dict[str, Any] | str:
    """A record, or why the line is not one."""
    if not raw.strip():
        return "empty line"
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "unparsable: not UTF-8 (truncated or edited?)"
    except json.JSONDecodeError as exc:
        return f"unparsable: invalid JSON at column {exc.colno} (truncated or edited?)"
    if not isinstance(value, dict):
        return "unparsable: not a JSON object (edited?)"
    missing = [key for key in ("prev", "hash") if not isinstance(value.get(key), str)]
    if missing:
        return "not an audit record: no " + " or ".join(repr(key) for key in missing) + " (edited?)"
    return value


@dataclass
class Verification:
    records: int = 0
    problems: list[str] = field(default_factory=list)


def check(path: Path) -> Verification:
    """Every line of `path` checked: its own hash, and its `prev` against the last well-formed
    record before it. Raises OSError when the file cannot be read."""
    result = Verification()
    name = str(path)
    expected_prev, prev_line = GENESIS, 0
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            result.records += 1
            parsed = _parse(raw.rstrip(b"\n"))
            if isinstance(parsed, str):
                result.problems.append(f"{name}:{number}: {parsed}")
                continue
            if record_hash(parsed) != parsed["hash"]:
                result.problems.append(f"{name}:{number}: hash does not match the line's contents (edited?)")
            if parsed["prev"] != expected_prev:
                if prev_line == 0:
                    result.problems.append(
                        f"{name}:{number}: prev is not the start of a chain (lines before it were removed?)")
                else:
                    result.problems.append(
                        f"{name}:{number}: prev does not match line {prev_line} (a line was removed or reordered)")
            expected_prev, prev_line = parsed["hash"], number
    return result


def verify(path: Path) -> list[str]:
    """[] when the chain in `path` is intact; else one problem per broken link, each
    `FILE:LINE: what is wrong`. Raises OSError (FileNotFoundError, ...) when it cannot be read."""
    return check(path).problems
