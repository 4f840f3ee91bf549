"""Replacing a file in one step, for files `engine serve` may be watching.

The new content goes to a temporary file in the same directory (its name starts with '.',
so `engine serve` and `engine validate DIR` skip it), is synced, and is renamed over the
target: a reader sees the old file or the new one, never a mix. Permission bits are kept, a
symbolic link (a ConfigMap's) stays one and its target is rewritten, and the directory is
synced so the rename survives a power cut.
"""

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

NEW_FILE_MODE = 0o644


def replace_file(path: Path, data: bytes, before_rename: Callable[[Path], None] | None = None) -> None:
    """Write `data` as the file at `path` atomically. `before_rename(real_path)` may raise to
    abandon the write at the last moment (the temporary file is removed)."""
    real = path.resolve()
    mode = stat.S_IMODE(real.stat().st_mode) if real.exists() else NEW_FILE_MODE
    fd, temporary = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".writing", dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        if before_rename is not None:
            before_rename(real)
        os.replace(temporary, real)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(real.parent)


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed file's directory entry durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
