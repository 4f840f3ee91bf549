"""The LMDB environment behind every durable edge of a process.

One environment per state directory and process, whatever the number of graphs and edges:
py-lmdb refuses to open the same environment twice in a process (LMDB's locks belong to
the process and file, so a second open would share and then release the first's locks).
`LmdbStore(directory)` therefore joins an environment this process already opened for that
directory. Each edge is a named database in it; writes are short transactions, one per
batch, committed with fsync when `sync` is on.

The map (the most the file may grow to) starts small and doubles when a write meets its
end, up to `max_map_size`; there the store reports the write as not done and the edge
behaves as full. A full disk is reported the same way. Nothing committed is ever lost:
a failed transaction is aborted as a whole.
"""

import errno
import fcntl
import logging
import os
import resource
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import lmdb

from adapters.storage.crypt import (
    FITS,
    NEEDS_KEY,
    PLAIN,
    PLAINTEXT,
    UNMARKED,
    WRONG_KEY,
    Codec,
    fits,
    marker,
)
from adapters.storage.crypt import MARKER_KEY as ENCRYPTION
from engine.node import NodeFailure

LOG: Final = logging.getLogger("headrace")

KiB: Final = 1 << 10
MiB: Final = 1 << 20
GiB: Final = 1 << 30
MAX_DBS: Final = 4096  # one named database per durable edge, across every graph
PAGE: Final = 4096
# Errors of a write that ran out of disk (or of the file size a process may write).
DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
LOW_DISK: Final = 16 * (1 << 20)  # free bytes under which an I/O error counts as a full disk
FIX: Final = "move it aside; it is not a Headrace state directory"
TICKS: Final = b"#store"  # the store's own database ('#' starts no graph name)
CHECKPOINTS: Final = b"#checkpoints"  # positions and node states (adapters/storage/lmdb_table.py)
# Held shared by every process using the directory, exclusively by `engine state rotate-key`.
LOCK_FILE: Final = "headrace.lock"

T = TypeVar("T")

if TYPE_CHECKING:
    from lmdb import _Database as Database  # a named database's handle
else:
    Database = object


class DurableStorageError(NodeFailure):
    """Durable edge storage cannot be used (not an LMDB environment, unreadable, broken):
    the graph stops with this one line."""


class _Environment:
    """What every `LmdbStore` of one directory shares."""

    def __init__(self, path: str, env: lmdb.Environment, max_map_size: int, lock: int) -> None:
        self.path = path
        self.env = env
        self.lock = lock  # the open LOCK_FILE, locked while the environment is open
        self.checked: Codec | None = None  # the codec the state was found to fit
        self.max_map_size = max_map_size
        self.stores = 0  # open `LmdbStore`s using it; the last `close` closes it
        self.freed = False  # a commit deleted events since the last tick (see `LmdbStore._tick`)
        self.databases: dict[bytes, Database] = {}
        # Named database -> the edge object that uses it now. A graph reloaded by `engine
        # serve` builds its new edges while the old ones still drain; the newest to start
        # using a database owns it, and an older one touching it after that is an error.
        self.owners: dict[bytes, object] = {}


_OPEN: dict[str, _Environment] = {}
_OPEN_LOCK: Final = threading.Lock()


def size_text(size: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} bytes"


def _pages(size: int) -> int:
    return max(PAGE, (size + PAGE - 1) // PAGE * PAGE)


def _open(path: str, map_size: int, sync: bool) -> lmdb.Environment:
    try:
        return lmdb.open(path, map_size=map_size, max_dbs=MAX_DBS, sync=sync, metasync=sync)
    except (lmdb.InvalidError, lmdb.VersionMismatchError, lmdb.CorruptedError, lmdb.PanicError) as exc:
        raise DurableStorageError(f"durable edge storage {path} is not an LMDB environment "
                                  f"({_reason(exc)}): {FIX}") from None
    except lmdb.Error as exc:
        if exc.code == errno.ENOTDIR:
            raise DurableStorageError(f"durable edge storage {path} is not a directory: {FIX}") from None
        raise DurableStorageError(f"cannot open durable edge storage {path}: {_reason(exc)}") from None


def _lock(path: str, exclusive: bool) -> int:
    """LOCK_FILE of `path`, locked: shared (several processes may use one state directory),
    or exclusive (no other process may have it open)."""
    try:
        fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DurableStorageError(f"cannot open durable edge storage {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        if exclusive:
            raise DurableStorageError(f"durable edge storage {path} is in use by another process: stop the "
                                      "`engine run` or `engine serve` that uses it first") from None
        raise DurableStorageError(f"durable edge storage {path} is being re-encrypted (`engine state rotate-key`): "
                                  "start again when that has finished") from None
    return fd


def _reason(exc: lmdb.Error) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text  # drop the path or call LMDB prefixes


def maintain_all() -> int:
    """`maintain` every environment this process has open; returns the reader slots cleared."""
    with _OPEN_LOCK:
        shared = list(_OPEN.values())
    return sum(s.env.reader_check() for s in shared)


class LmdbStore:
    def __init__(self, directory: Path, map_size: int = 64 * MiB, max_map_size: int = 8 * GiB,
                 sync: bool = True, codec: Codec = PLAIN, verify: bool = True, exclusive: bool = False) -> None:
        """Open (or join) the environment in `directory`, created when missing. The sizes
        and `sync` of the first store opened for a directory are the ones that hold.
        `codec` seals and opens the values (crypt.py); `verify` checks that it fits the
        state (raises DurableStorageError if not), which a caller that reads no value may skip.
        `exclusive`: refuse if another process has the directory open, and keep others out."""
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise DurableStorageError(f"durable edge storage {directory} is not a directory: {FIX}") from None
        except OSError as exc:
            raise DurableStorageError(f"cannot create durable edge storage {directory}: {exc.strerror}") from None
        path = os.path.realpath(directory)
        self.cleared_at_open = 0  # stale reader slots of crashed processes, cleared when this store opened
        with _OPEN_LOCK:
            shared = _OPEN.get(path)
            if shared is None:
                lock = _lock(path, exclusive)
                try:
                    env = _open(path, _pages(map_size), sync)
                except DurableStorageError:
                    os.close(lock)
                    raise
                shared = _Environment(path, env, _pages(max(map_size, max_map_size)), lock)
                # A process killed inside a read transaction leaves its reader slot behind,
                # which keeps every page it could see from being reused: the file grows.
                self.cleared_at_open = env.reader_check()
                _OPEN[path] = shared
            shared.stores += 1
        self.shared = shared
        self.path = Path(path)
        self.closed = False
        self.full_reason = ""  # why the last `write` returned None, and what helps
        self.full_fix = ""
        self.ticks = self.database(TICKS)  # created now, while there is room
        self.codec = codec
        if verify and shared.checked is not codec:
            try:
                self._verify(codec)
            except DurableStorageError:
                self.close()
                raise
            shared.checked = codec

    def _verify(self, codec: Codec) -> None:
        """Refuse a key that does not fit the state (crypt.fits); mark an empty state opened
        with a key as encrypted."""
        found = fits(codec, self.stored_marker(), codec.encrypted and self.has_values())
        if found == FITS:
            return
        where = f"durable edge storage {self.path}"
        if found == UNMARKED:
            ticks, sealed = self.ticks, marker(codec)
            if self.write(lambda txn: txn.put(ENCRYPTION, sealed, db=ticks)) is None:
                raise DurableStorageError(f"{where}: cannot record that it is encrypted: {self.full_reason}")
            return
        if found == NEEDS_KEY:
            raise DurableStorageError(f"{where} is encrypted and no key is set: set state_encryption_key_file "
                                "(HEADRACE_STATE_ENCRYPTION_KEY_FILE) to the file of its key")
        if found == WRONG_KEY:
            raise DurableStorageError(f"{where} is encrypted with another key than {codec.source}: set the key it was "
                                "encrypted with (`engine state rotate-key` changes it)")
        assert found == PLAINTEXT
        raise DurableStorageError(f"{where} holds unencrypted events or checkpoints and {codec.source} is set: "
                            f"encrypt them with `engine state rotate-key --old none --new {codec.key_file}` "
                            "while nothing runs, or unset state_encryption_key_file")

    def stored_marker(self) -> bytes | None:
        ticks = self.ticks
        return self.read(lambda txn: None if (v := txn.get(ENCRYPTION, db=ticks)) is None else bytes(v))

    def has_values(self) -> bool:
        """Whether any edge or checkpoint holds a value (the store's own database aside)."""
        def work(txn: lmdb.Transaction) -> list[bytes]:
            return [bytes(name) for name, _ in txn.cursor()]

        for name in self.read(work):
            if name == TICKS or (name.startswith(b"#") and name != CHECKPOINTS):
                continue
            if self.entries(self.database(name)) > 0:
                return True
        return False

    def entries(self, db: Database) -> int:
        return self.read(lambda txn: int(txn.stat(db)["entries"]))

    @property
    def env(self) -> lmdb.Environment:
        return self.shared.env

    @property
    def max_map_size(self) -> int:
        return self.shared.max_map_size

    def maintain(self) -> int:
        """Clear reader slots left by crashed processes; returns how many. Run it now and
        then (a long-running host: every minute or so)."""
        return self.env.reader_check()

    def close(self) -> None:
        """This store is done; the environment closes with the last store using it."""
        if self.closed:
            return
        self.closed = True
        with _OPEN_LOCK:
            self.shared.stores -= 1
            if self.shared.stores == 0:
                _OPEN.pop(self.shared.path, None)
                self.shared.env.close()
                os.close(self.shared.lock)  # after the environment: no other process may see it half open

    # -- databases and owners -------------------------------------------------------------

    def database(self, name: bytes) -> Database:
        """The named database (created when missing)."""
        handle = self.shared.databases.get(name)
        if handle is None:
            env = self.env
            handle = self.write(lambda txn: env.open_db(name, txn=txn))
            if handle is None:
                raise DurableStorageError(f"durable edge storage {self.path}: cannot create "
                                          f"'{name.decode()}': {self.full_reason}")
            self.shared.databases[name] = handle
        return handle

    def claim(self, name: bytes, owner: object) -> None:
        self.shared.owners[name] = owner

    def owns(self, name: bytes, owner: object) -> bool:
        return self.shared.owners.get(name) is owner

    # -- transactions ---------------------------------------------------------------------

    def read(self, work: Callable[[lmdb.Transaction], T]) -> T:
        """`work` in a read transaction whose values are buffers: copy what you keep."""
        while True:
            try:
                with self.env.begin(buffers=True) as txn:
                    return work(txn)
            except lmdb.MapResizedError:  # another process grew the map: adopt its size
                self.env.set_mapsize(0)
            except lmdb.Error as exc:
                raise self.failure(exc) from None

    def write(self, work: Callable[[lmdb.Transaction], T], freeing: bool = False) -> T | None:
        """`work` in one write transaction, committed; None when it did not fit (the map is
        at its limit, or the disk is full: `full_reason` says which), with nothing written.
        `freeing` writes (deletes) may grow the map a little past the limit: deleting needs
        a few new pages too, and refusing it would keep the store full for good."""
        env = self.env
        grown = False
        while True:
            try:
                with env.begin(write=True) as txn:
                    result = work(txn)
                break
            except lmdb.MapFullError:
                if self._make_room(freeing):
                    grown = True
                    continue
                if self.shared.freed and not freeing and self._tick():
                    continue
                self.full_reason = f"is at its size limit ({size_text(self.max_map_size)})"
                self.full_fix = "let its consumer catch up, or lower the capacity of durable edges"
                return None
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.Error as exc:
                if self._out_of_space(exc):
                    self.full_reason = f"cannot be written: no space left for {self.path} ({_reason(exc)})"
                    self.full_fix = "free space on that disk"
                    return None
                raise self.failure(exc) from None
        if freeing:
            self.shared.freed = True
            if grown and env.info()["map_size"] > self.max_map_size:
                env.set_mapsize(self.max_map_size)  # back to the limit (LMDB keeps what is in use)
        return result

    def _out_of_space(self, exc: lmdb.Error) -> bool:
        """LMDB reports a write cut short by a full disk as EIO, not ENOSPC: then look."""
        if exc.code in DISK_FULL:
            return True
        if exc.code != errno.EIO:
            return False
        disk = os.statvfs(self.path)
        if disk.f_bavail * disk.f_frsize < LOW_DISK:
            return True
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]  # the most a process may write to a file
        return limit != resource.RLIM_INFINITY and os.path.getsize(self.path / "data.mdb") + PAGE > limit

    def _tick(self) -> bool:
        """Commit a one-key write. LMDB reuses the pages a commit freed only from the commit
        after next (the one in between may still be read), so at the size limit a write right
        after deletions would fail, and fail again on every retry, with no commit between."""
        ticks = self.ticks
        done = self.write(lambda txn: txn.put(b"tick", b"", db=ticks), freeing=True) is not None
        self.shared.freed = False
        return done

    def _make_room(self, freeing: bool) -> bool:
        env = self.env
        if env.reader_check():  # a crashed reader pinned pages that can be reused now
            return True
        size = env.info()["map_size"]
        limit = self.max_map_size + (_pages(self.max_map_size // 16) if freeing else 0)
        if size >= limit:
            return False
        grown = min(_pages(size * 2), limit)
        env.set_mapsize(grown)
        LOG.info(f"durable edge storage {self.path} grew to {size_text(grown)}")
        return True

    def failure(self, exc: lmdb.Error) -> DurableStorageError:
        if isinstance(exc, (lmdb.CorruptedError, lmdb.PanicError, lmdb.InvalidError)):
            return DurableStorageError(f"durable edge storage {self.path} is damaged ({_reason(exc)}): {FIX}")
        return DurableStorageError(f"durable edge storage {self.path}: {_reason(exc)}")
