"""What durable edges keep in LMDB, byte for byte, and the transactions on it (a state
directory outlives the process, and may outlive a version of Headrace: change the layout
only with a way to read the old one).

- Each edge is a named database `graph/edge_id`; graph and node names are `[a-z][a-z0-9_]*`,
  so the store's own databases start with `#`.
- Keys are 8-byte big-endian sequence numbers: key order is arrival order.
- Values are the events in MessagePack (a map); an event MessagePack cannot hold (an
  integer beyond 64 bits) is stored as a 0x00 byte then compact JSON. MessagePack is used for
  speed: it encodes a small event 8x and decodes it 4x faster than JSON, which made the
  encoding, not LMDB, the cost of a durable edge.
- `#checkpoints` holds the positions of sources and the states of nodes saved with an
  edge's commits, keyed by the JSON list `[graph, edge_id, owner]`.
- With a key (`state_encryption_key_file`), every value above is sealed (adapters/storage/crypt.py:
  nonce, AES-GCM ciphertext and tag, bound to its database and key); keys are not.
"""

import json
import struct
from collections.abc import Iterable
from itertools import islice
from typing import Final

import lmdb
import msgpack

from adapters.storage.crypt import SealBroken
from adapters.storage.lmdb_store import CHECKPOINTS, FIX, DurableStorageError, LmdbStore
from engine.node import Batch, Event

Buffer = bytes | memoryview  # values and keys read with `buffers=True`

__all__ = ["CHECKPOINTS", "EdgeTable", "checkpoint_key", "checkpoint_prefix", "database_name", "decode", "edge_of",
           "encode"]

_SEQ: Final = struct.Struct(">Q")
pack_seq: Final = _SEQ.pack


def unpack_seq(key: Buffer) -> int:
    seq: int = _SEQ.unpack(key)[0]
    return seq


def database_name(graph: str, edge_id: str) -> bytes:
    return f"{graph}/{edge_id}".encode()


def edge_of(name: bytes) -> tuple[str, str] | None:
    """(graph, edge id) of a database `database_name` made; None for the store's own."""
    if name.startswith(b"#") or b"/" not in name:
        return None
    graph, edge_id = name.decode().split("/", 1)  # a graph name has no '/'
    return graph, edge_id


def checkpoint_prefix(graph: str, edge_id: str) -> bytes:
    """What every checkpoint key of one edge starts with (one per reading owner)."""
    return json.dumps([graph, edge_id], separators=(",", ":"))[:-1].encode() + b","


def checkpoint_key(graph: str, edge_id: str, owner: str) -> bytes:
    return checkpoint_prefix(graph, edge_id) + json.dumps(owner).encode() + b"]"


_PACKER: Final = msgpack.Packer(use_bin_type=True)
_JSON: Final = b"\x00"  # a MessagePack map never starts with this byte


def encode(event: Event) -> bytes:
    """Raises TypeError or ValueError for what neither format can hold (RecursionError if deep)."""
    try:
        packed: bytes = _PACKER.pack(event)
        return packed
    except OverflowError:  # an integer beyond 64 bits: JSON holds any integer
        _PACKER.reset()
        return _JSON + json.dumps(event, separators=(",", ":")).encode()


def decode(values: Iterable[Buffer]) -> Batch:
    """Stored values back to events."""
    unpack = msgpack.unpackb
    return [json.loads(bytes(v[1:])) if v[:1] == _JSON else unpack(v, raw=False) for v in values]


class EdgeTable:
    """One edge's database, and the transactions the edge runs on it. Every method is one
    transaction; writes return None when the store had no room (nothing was written)."""

    def __init__(self, store: LmdbStore, graph: str, edge_id: str) -> None:
        self.store = store
        self.graph = graph
        self.edge_id = edge_id
        self.name = database_name(graph, edge_id)
        self.db = store.database(self.name)
        self.positions = store.database(CHECKPOINTS)
        self.codec = store.codec
        self.commits = 0  # write transactions committed for this edge (metrics)

    def scan(self, events: bool) -> tuple[int, int, int, list[tuple[int, Event]]]:
        """(first key, next key, count, and every (key, event) when `events`)."""
        db = self.db

        def work(txn: lmdb.Transaction) -> tuple[int, int, int, list[tuple[int, Event]]]:
            cursor = txn.cursor(db)
            if not cursor.first():
                return 0, 0, 0, []
            first = unpack_seq(cursor.key())
            stored = [(unpack_seq(k), self._decode([k], [v])[0]) for k, v in cursor.iternext()] if events else []
            cursor.last()
            return first, unpack_seq(cursor.key()) + 1, int(txn.stat(db)["entries"]), stored

        return self.store.read(work)

    def read(self, start: int, count: int) -> tuple[Batch, list[int]]:
        """`count` events from key `start` on, and their keys."""
        db = self.db

        def work(txn: lmdb.Transaction) -> tuple[Batch, list[int]]:
            cursor = txn.cursor(db)
            cursor.set_range(pack_seq(start))
            items = list(islice(cursor.iternext(), count))
            keys = [key for key, _ in items]
            return self._decode(keys, [value for _, value in items]), [unpack_seq(key) for key in keys]

        return self.store.read(work)

    def get(self, seq: int) -> Event:
        db, key = self.db, pack_seq(seq)
        return self._decode([key], [self.store.read(lambda txn: bytes(txn.get(key, b"", db=db)))])[0]

    def _decode(self, keys: list[Buffer], values: list[Buffer]) -> Batch:
        try:
            return decode(self.codec.open_many(self.name, keys, values))
        except SealBroken:
            raise self._broken(self.name) from None
        except (ValueError, msgpack.UnpackException) as exc:  # LMDB checks its pages, not what is in them
            raise DurableStorageError(f"durable edge storage {self.store.path}: '{self.name.decode()}' holds "
                                      f"an event that cannot be read ({exc}): {FIX}") from None

    def _broken(self, name: bytes) -> DurableStorageError:
        return DurableStorageError(f"durable edge storage {self.store.path}: a value stored in '{name.decode()}' "
                                   "fails its integrity check (changed on disk, or not sealed with this key for this "
                                   "place): restore the state directory from a backup, or move it aside")

    def _saved(self, saves: dict[str, str]) -> list[tuple[bytes, bytes]]:
        """Checkpoint records to write, sealed (outside the transaction: it holds the writer lock)."""
        keys = [checkpoint_key(self.graph, self.edge_id, owner) for owner in saves]
        return list(zip(keys, self.codec.seal_many(CHECKPOINTS, keys, [p.encode() for p in saves.values()])))

    def write(self, evict_from: int, evict: int, rewrites: dict[int, bytes], first: int, values: list[bytes],
              saves: dict[str, str]) -> int | None:
        """Delete `evict` events from key `evict_from` on, rewrite `rewrites`, append `values`
        at keys `first`, ..., save checkpoints. Returns the first key after the deleted ones."""
        db, positions = self.db, self.positions
        saved = self._saved(saves) if saves else []
        keys = [pack_seq(seq) for seq in range(first, first + len(values))]
        values = self.codec.seal_many(self.name, keys, values)
        rewrite_keys = [pack_seq(seq) for seq in rewrites]
        rewritten = list(zip(rewrite_keys, self.codec.seal_many(self.name, rewrite_keys, list(rewrites.values()))))

        def work(txn: lmdb.Transaction) -> int:
            cursor = txn.cursor(db)
            after = evict_from
            if evict:
                cursor.set_range(pack_seq(evict_from))
                for _ in range(evict):
                    cursor.delete()  # and on to the next
                key = cursor.key()
                after = unpack_seq(key) if key else first
            for key, value in rewritten:
                txn.put(key, value, db=db)
            if values:
                cursor.putmulti(zip(keys, values), append=True)
            for key, value in saved:
                txn.put(key, value, db=positions)
            return after

        after = self.store.write(work)
        if after is not None:
            self.commits += 1
        return after

    def erase(self, count: int, saves: dict[str, str]) -> bool:
        """Delete the oldest `count` events and save checkpoints; False when out of room."""
        db, positions = self.db, self.positions
        saved = self._saved(saves) if saves else []

        def work(txn: lmdb.Transaction) -> bool:
            cursor = txn.cursor(db)
            if count > 0 and cursor.first():
                for _ in range(count):
                    if not cursor.delete():
                        break
            for key, value in saved:
                txn.put(key, value, db=positions)
            return True

        done = self.store.write(work, freeing=True) is not None
        self.commits += done
        return done

    def size_bytes(self) -> int:
        """The pages the edge's events take on disk (its database's, without free pages)."""
        db = self.db

        def work(txn: lmdb.Transaction) -> int:
            stat = txn.stat(db)
            return int(stat["psize"]) * (int(stat["branch_pages"]) + int(stat["leaf_pages"]) +
                                         int(stat["overflow_pages"]))

        return self.store.read(work)

    def checkpoint(self, owner: str) -> str:
        key, positions = checkpoint_key(self.graph, self.edge_id, owner), self.positions
        stored = self.store.read(lambda txn: bytes(txn.get(key, b"", db=positions)))
        if not stored:
            return ""
        try:
            return bytes(self.codec.open(CHECKPOINTS, key, stored)).decode()
        except SealBroken:
            raise self._broken(CHECKPOINTS) from None
