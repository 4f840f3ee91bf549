"""Reading the served directory: which graph files it holds, with their text and a digest.

Event types from the watcher are never trusted: every reload starts from a fresh scan, and
a graph changes only when its bytes do. The directory is listed through whatever symlinks
lead to it (a git-sync link, a ConfigMap's `..data`), and so is each file; names starting
with `.` are skipped (`..data`, `..2026_11_21_…`, editor swap and temp files).
"""

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from loader.api import is_graph_file

# A file can vanish between listing and reading (an atomic save, a checkout, a ConfigMap
# swap): the scan starts over, this many times, then skips what is still vanishing.
SCAN_ATTEMPTS: Final = 5
# A burst of writes (git checkout) settles when two scans this far apart agree.
SETTLE_S: Final = 0.05
SETTLE_ATTEMPTS: Final = 20


@dataclass(frozen=True)
class GraphFile:
    name: str  # the file's name in the directory: its identity across reloads
    path: Path
    text: str  # decoded UTF-8, or "" when `error` says why it could not be read
    digest: str
    error: str = ""


Snapshot = dict[str, GraphFile]


def is_graph_name(name: str) -> bool:
    return is_graph_file(name)


def identity(directory: Path) -> tuple[str, int] | None:
    """What the directory path leads to now (real path and inode): a changed identity
    means a link flipped or the directory was recreated, and the watch must start over."""
    try:
        real = os.path.realpath(directory)
        return real, os.stat(real).st_ino
    except OSError:
        return None


def _read(directory: Path, name: str) -> GraphFile | None:
    """None when the file vanished; a GraphFile with `error` when it cannot be read."""
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return GraphFile(name, path, "", "", "is a directory")
    except OSError as exc:
        return GraphFile(name, path, "", "", f"cannot read the file: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return GraphFile(name, path, "", digest, "the file is not UTF-8 text")
    return GraphFile(name, path, text, digest)


def scan_once(directory: Path) -> Snapshot | None:
    """Every graph file in the directory; None when the directory itself is missing."""
    for _ in range(SCAN_ATTEMPTS):
        try:
            names = sorted(n for n in os.listdir(directory) if is_graph_name(n))
        except (FileNotFoundError, NotADirectoryError):
            return None
        snapshot: Snapshot = {}
        vanished = False
        for name in names:
            if not (directory / name).exists() and (directory / name).is_symlink():
                continue  # a dangling link (a ConfigMap key mid-swap) is no graph yet
            found = _read(directory, name)
            if found is None:
                vanished = True
                break
            snapshot[name] = found
        if not vanished:
            return snapshot
        time.sleep(SETTLE_S)
    return snapshot


def scan(directory: Path) -> Snapshot | None:
    """A settled scan: repeated until two in a row agree, so a checkout in progress is
    not applied half old and half new."""
    previous = scan_once(directory)
    for _ in range(SETTLE_ATTEMPTS):
        time.sleep(SETTLE_S)
        current = scan_once(directory)
        if current == previous:
            return current
        previous = current
    return previous
