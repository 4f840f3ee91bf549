"""Signed graph bundles: what `engine bundle` writes and checks, and what `engine serve`
verifies before a reload when `trusted_keys` is set (docs/bundles.md).

`canonical` turns graph files into the bytes that are signed, `keys` reads and writes
Ed25519 keys, `signature` signs and verifies a directory or one file, and `gate` is serve's
check before each reload. `cryptography` comes with the `[trust]` extra: only these modules
import it, and only when a command needs it.
"""
