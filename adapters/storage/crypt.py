"""Durable state encrypted at rest (docs/edges.md#encryption-at-rest).

With `state_encryption_key_file` set, every value durable edges write to LMDB (events and
checkpoints) is sealed with AES-256-GCM: `nonce (12 random bytes) || ciphertext || tag`.
The associated data is the record's place, `database name || 0x00 || LMDB key`, so a record
copied to another edge, another checkpoint or another sequence number fails its check.
LMDB keys stay plaintext: they are sequence numbers and `[graph, edge, node]` names from
the graph file, never event data (coalescing edges keep their event keys in memory only).

The store chooses its codec once, when it opens: `PLAIN` passes values through untouched,
so a state without a key pays one method call per batch and nothing per event.

The store's own database keeps a marker (`MARKER_KEY`) when the state is encrypted: the
format and a sealed known constant, so that a wrong key is found at start-up rather than
at the first event read.
"""

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any, Final

from engine.node import NodeFailure

Buffer = bytes | memoryview  # values read with `buffers=True`

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # 96 bits, random per value
FORMAT: Final = 1
CIPHER: Final = "AES-256-GCM"
MARKER_KEY: Final = b"encryption"  # in the store's own database
_CHECK_TEXT: Final = b"headrace durable state key check"
_CHECK_PLACE: Final = b"#store"
MAKE_KEY: Final = "openssl rand -base64 32 > FILE"
INSTALL: Final = "pip install 'headrace[trust]'"


class StateKeyError(NodeFailure):
    """A key file that cannot be used, or a key that does not fit the state: one line."""


class SealBroken(ValueError):
    """A stored value fails its authentication: changed on disk, or sealed for another place
    or with another key."""


def read_key(path: Path, named_by: str = "state_encryption_key_file") -> bytes:
    """The 256-bit key in `path` (base64, surrounding whitespace allowed)."""
    where = f"{named_by} {path}"
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise StateKeyError(f"{where}: no such file; fix the path, or make a key: `{MAKE_KEY}`") from None
    except OSError as exc:
        raise StateKeyError(f"{where}: cannot read the key file: {exc.strerror or exc}") from None
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise StateKeyError(f"{where}: not base64; the file must hold a 256-bit key in base64 (44 characters), "
                            f"e.g. made by `{MAKE_KEY}`") from None
    if len(key) != KEY_BYTES:
        raise StateKeyError(f"{where}: holds a {len(key) * 8}-bit key; the file must hold a 256-bit key in base64 "
                            f"(44 characters), e.g. made by `{MAKE_KEY}`")
    return key


class Codec:
    """No encryption: values are stored as they are."""

    encrypted = False
    source = ""  # where the key came from, for messages: `state_encryption_key_file FILE`
    key_file = ""

    def seal_many(self, table: bytes, keys: list[bytes], values: list[bytes]) -> list[bytes]:
        return values

    def open_many(self, table: bytes, keys: list[Buffer], values: list[Buffer]) -> list[Buffer]:
        return values

    def seal(self, table: bytes, key: bytes, value: bytes) -> bytes:
        return value

    def open(self, table: bytes, key: Buffer, value: Buffer) -> Buffer:
        return value


PLAIN: Final = Codec()


class Sealer(Codec):
    """AES-256-GCM with the record's place as associated data."""

    encrypted = True

    def __init__(self, key: bytes, source: str, key_file: str) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise StateKeyError(f"{source} is set, and encrypting durable state needs the cryptography package: "
                                f"{INSTALL}") from None
        self.aead: Any = AESGCM(key)
        self.invalid: type[Exception] = InvalidTag
        self.source = source
        self.key_file = key_file

    def seal_many(self, table: bytes, keys: list[bytes], values: list[bytes]) -> list[bytes]:
        encrypt = self.aead.encrypt
        prefix = table + b"\x00"
        randoms = os.urandom(NONCE_BYTES * len(values))  # one system call per batch, not per value
        sealed = []
        for index, (key, value) in enumerate(zip(keys, values)):
            nonce = randoms[index * NONCE_BYTES:(index + 1) * NONCE_BYTES]
            sealed.append(nonce + encrypt(nonce, value, prefix + key))
        return sealed

    def open_many(self, table: bytes, keys: list[Buffer], values: list[Buffer]) -> list[Buffer]:
        prefix = table + b"\x00"
        return [self._open(prefix + bytes(key), value) for key, value in zip(keys, values)]

    def seal(self, table: bytes, key: bytes, value: bytes) -> bytes:
        return self.seal_many(table, [key], [value])[0]

    def open(self, table: bytes, key: Buffer, value: Buffer) -> Buffer:
        return self._open(table + b"\x00" + bytes(key), value)

    def _open(self, place: bytes, value: Buffer) -> bytes:
        view = memoryview(value)
        try:
            opened: bytes = self.aead.decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], place)
        except (self.invalid, ValueError):  # ValueError: too short to hold a nonce and a tag
            raise SealBroken(place.split(b"\x00", 1)[0].decode(errors="replace")) from None
        return opened


def codec_for(key_file: Path | None, named_by: str = "state_encryption_key_file") -> Codec:
    """The codec of a state opened with `key_file` (None: unencrypted)."""
    if key_file is None:
        return PLAIN
    return Sealer(read_key(key_file, named_by), f"{named_by} {key_file}", str(key_file))


def marker(codec: Codec) -> bytes:
    """What an encrypted state keeps under MARKER_KEY."""
    check = codec.seal(_CHECK_PLACE, MARKER_KEY, _CHECK_TEXT)
    return json.dumps({"format": FORMAT, "cipher": CIPHER, "check": base64.b64encode(check).decode()}).encode()


# What `fits` finds when a state is opened with a codec.
FITS: Final = "fits"  # encrypted with this key, or unencrypted and opened without one
UNMARKED: Final = "unmarked"  # empty and unmarked, opened with a key: mark it, then it fits
NEEDS_KEY: Final = "needs-key"  # encrypted, opened without a key
WRONG_KEY: Final = "wrong-key"  # encrypted with another key (or an unreadable marker)
PLAINTEXT: Final = "plaintext"  # holds unencrypted values, opened with a key


def fits(codec: Codec, stored_marker: bytes | None, has_values: bool) -> str:
    if stored_marker is None:
        if not codec.encrypted:
            return FITS
        return PLAINTEXT if has_values else UNMARKED
    if not codec.encrypted:
        return NEEDS_KEY
    try:
        check = base64.b64decode(json.loads(stored_marker)["check"], validate=True)
        return FITS if codec.open(_CHECK_PLACE, MARKER_KEY, check) == _CHECK_TEXT else WRONG_KEY
    except (ValueError, KeyError, TypeError, binascii.Error):  # SealBroken is a ValueError
        return WRONG_KEY
