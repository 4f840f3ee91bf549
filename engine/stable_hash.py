"""`stable_hash`: one 64-bit number per JSON value, the same in every process, run and machine.

Partitioned nodes route each event to instance `stable_hash(key) % N`, and expressions may
call it, so it must not depend on Python's per-process string-hash seed, on the dict order
of an object, or on the machine's byte order. It is defined on the value's canonical JSON:

- objects with their keys sorted (by code point), no whitespace (`,` and `:`), text as
  UTF-8 without `\\u` escapes except the ones JSON requires;
- a float with an integral value written as that integer (`2.0` as `2`, `-0.0` as `0`), so
  values an `aggregate` groups together (`2 == 2.0`) always land on the same instance;
  other floats as Python's shortest repr (`0.1`), `NaN`, `Infinity`, `-Infinity` as such;
- `true`, `false`, `null` as JSON writes them (`true` and `1` hash differently);
- a lone surrogate in text (`"\\ud800"` in JSON input) as Python's "surrogatepass" UTF-8.

The hash is BLAKE2b with an 8-byte digest (no key, no salt) of those UTF-8 bytes, read as
an unsigned big-endian integer: 0 <= stable_hash(x) < 2**64. Example:
`stable_hash("alice") == 12405121866166422378`. (BLAKE2b with `digest_size=8` is its own
function, not a truncated 64-byte digest: this definition names it exactly.)
"""

import hashlib
import json
import math
from typing import Final

_DIGEST_BYTES: Final = 8
BITS: Final = 8 * _DIGEST_BYTES


def _normal(value: object) -> object:
    """`value` with integral floats as ints, nested too (what canonical JSON writes)."""
    if isinstance(value, float):
        if math.isfinite(value) and value == math.floor(value):
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def canonical_text(value: object) -> str:
    """The canonical JSON text `stable_hash` hashes."""
    if isinstance(value, str):  # the common key: skips the walk
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def stable_hash(value: object) -> int:
    """The seed-free 64-bit hash of `value`'s canonical JSON (see the module docstring)."""
    # "surrogatepass": a lone surrogate (JSON input may hold "\\ud800") is three bytes, as
    # sha256() hashes it, instead of an error that would stop a sample or a partition router.
    data = canonical_text(value).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest()
    return int.from_bytes(digest, "big")
