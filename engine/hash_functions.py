"""Hashing and ids in expressions: `sha256`, `sha1`, `md5`, `stable_hash`, `uuid4`.

Text is hashed as its UTF-8 bytes, so `sha256(email)` is what `sha256sum` prints for the
same text. Any other value is hashed as its canonical JSON (`engine.stable_hash`: keys
sorted, no spaces, `2.0` written `2`), so equal values give equal digests whatever their
key order; a number and its text therefore agree (`sha256(5) == sha256('5')`).
`uuid4()` draws its 122 random bits from the node's random generator, like `rand()`: a
seeded node (and a graph test) gives the same ids on every run.
"""

import hashlib
import random
import uuid

from engine.stable_hash import canonical_text, stable_hash


def _payload(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return canonical_text(value).encode("utf-8", "surrogatepass")


def sha256_hex(value: object) -> str:
    return hashlib.sha256(_payload(value)).hexdigest()


def sha1_hex(value: object) -> str:
    return hashlib.sha1(_payload(value), usedforsecurity=False).hexdigest()


def md5_hex(value: object) -> str:
    # Not for secrets (md5 is broken); `usedforsecurity=False` keeps it available on FIPS builds.
    return hashlib.md5(_payload(value), usedforsecurity=False).hexdigest()


def stable_hash_of(value: object) -> int:
    """The same 64-bit hash partitioning uses; one definition, in engine/stable_hash.py."""
    return stable_hash(value)


class Uuid4:
    """`uuid4()` bound to one node's random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
