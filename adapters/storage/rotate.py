"""`engine state rotate-key`: re-encrypt a stopped state directory (docs/edges.md#encryption-at-rest).

Every value is opened with the old codec and sealed with the new one, and the marker
replaced, in one LMDB transaction: a crash leaves the state as it was, under the old key.
Then the file is rewritten compactly (`copyfd(compact=True)`) and swapped in, so that the
pages the old values sat on (plaintext, for `--old none`) do not stay behind in the file.
The store is opened exclusively: a running `engine run` or `engine serve` makes it refuse.
"""

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Final

import lmdb

from adapters.storage.crypt import FITS, NEEDS_KEY, PLAINTEXT, UNMARKED, Codec, SealBroken, fits, marker
from adapters.storage.crypt import MARKER_KEY as ENCRYPTION
from adapters.storage.lmdb_store import TICKS, DurableStorageError, GiB, LmdbStore

CHUNK: Final = 4096  # records read, then rewritten, at a time (a cursor is not moved while writing)


class RotateError(Exception):
    """The keys do not fit the state, or it is in use: one line."""


def rotate(edges_dir: Path, old: Codec, new: Codec) -> int:
    """Re-seal every value of the store in `edges_dir` from `old` to `new`; returns how many."""
    size = (edges_dir / "data.mdb").stat().st_size
    store = LmdbStore(edges_dir, max_map_size=max(8 * GiB, 3 * size), codec=old, verify=False, exclusive=True)
    try:
        _check_old(store, old)
        count = store.write(lambda txn: _reseal(store, txn, old, new))
        if count is None:
            raise RotateError(f"durable edge storage {store.path}: cannot re-encrypt it: {store.full_reason}")
        _compact(store)
    finally:
        store.close()
    return count


def _check_old(store: LmdbStore, old: Codec) -> None:
    where = f"durable edge storage {store.path}"
    found = fits(old, store.stored_marker(), old.encrypted and store.has_values())
    if found in (FITS, UNMARKED):
        return
    if found == NEEDS_KEY:
        raise RotateError(f"{where} is encrypted: give its key file with --old")
    if found == PLAINTEXT:
        raise RotateError(f"{where} is not encrypted: use --old none")
    raise RotateError(f"{where} is not encrypted with {old.key_file} (its key check fails): give the key "
                      "file it was encrypted with as --old")


def _names(txn: lmdb.Transaction) -> list[bytes]:
    """Every database holding sealed values: edges and checkpoints, not the store's own."""
    return [bytes(name) for name, _ in txn.cursor() if bytes(name) != TICKS]


def _chunks(txn: lmdb.Transaction, db: "lmdb._Database") -> Iterator[list[tuple[bytes, bytes]]]:
    start = b""
    while True:
        cursor = txn.cursor(db)
        if not cursor.set_range(start):
            return
        items = [(bytes(k), bytes(v)) for k, v in islice(cursor.iternext(), CHUNK)]
        if not items:
            return
        yield items
        start = items[-1][0] + b"\x00"  # the least key after the last one


def _reseal(store: LmdbStore, txn: lmdb.Transaction, old: Codec, new: Codec) -> int:
    count = 0
    env = store.env
    for name in _names(txn):
        db = env.open_db(name, txn=txn)
        for items in _chunks(txn, db):
            keys = [key for key, _ in items]
            try:
                opened = [bytes(v) for v in old.open_many(name, list(keys), [v for _, v in items])]
            except SealBroken:
                raise RotateError(f"durable edge storage {store.path}: a value stored in '{name.decode()}' fails "
                                  "its integrity check; nothing was changed") from None
            for key, value in zip(keys, new.seal_many(name, keys, opened)):
                txn.put(key, value, db=db)
            count += len(items)
    ticks = env.open_db(TICKS, txn=txn)
    if new.encrypted:
        txn.put(ENCRYPTION, marker(new), db=ticks)
    else:
        txn.delete(ENCRYPTION, db=ticks)
    return count


def _compact(store: LmdbStore) -> None:
    """Rewrite the file with the live pages only, then swap it in (atomically)."""
    data = store.path / "data.mdb"
    fresh = store.path / "data.mdb.rotated"
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            store.env.copyfd(fd, compact=True)
        except lmdb.Error as exc:
            raise DurableStorageError(f"durable edge storage {store.path}: the values were re-encrypted, but "
                                      f"the file could not be compacted ({exc}); old pages may remain in it") from None
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(fresh, data)
    directory = os.open(store.path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
