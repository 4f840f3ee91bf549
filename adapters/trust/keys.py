"""Ed25519 keys as PEM files: PKCS#8 for the private key, SubjectPublicKeyInfo for the public
key, the forms `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write too.

A key's id is the first 16 hex digits of the SHA-256 of its 32 raw public bytes: short
enough to read in a log line, and the same whichever file the key came from.
"""

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

EXTRA: Final = "trust"
KEY_ID_DIGITS: Final = 16


class TrustError(Exception):
    """A key, a signature file or a graph file that cannot be used: one line naming the file and the fix."""


def _crypto(module: str) -> ModuleType:
    """A `cryptography` module; without the package, the one line that says which extra to add."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrustError("signed bundles need the `cryptography` package; install it with "
                         f"`pip install 'headrace[{EXTRA}]'`") from None


def _serialization() -> ModuleType:
    return _crypto("cryptography.hazmat.primitives.serialization")


def _ed25519() -> ModuleType:
    return _crypto("cryptography.hazmat.primitives.asymmetric.ed25519")


def public_bytes(key: "Ed25519PublicKey") -> bytes:
    serialization = _serialization()
    raw: bytes = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def key_id(key: "Ed25519PublicKey") -> str:
    return hashlib.sha256(public_bytes(key)).hexdigest()[:KEY_ID_DIGITS]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TrustError(f"{path}: no such {what} file; check the path") from None
    except IsADirectoryError:
        raise TrustError(f"{path}: is a directory, not a {what} file") from None
    except OSError as exc:
        raise TrustError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None


def load_private_key(path: Path) -> "Ed25519PrivateKey":
    data = _read(path, "private key")
    serialization, ed25519 = _serialization(), _ed25519()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):  # not PEM, not a key, or encrypted with a passphrase
        raise TrustError(f"{path}: not an unencrypted PEM private key; make one with "
                         "`engine bundle keygen -o NAME`") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TrustError(f"{path}: not an Ed25519 key; make one with `engine bundle keygen -o NAME`")
    private: Ed25519PrivateKey = key
    return private


def load_public_key(path: Path) -> "Ed25519PublicKey":
    data = _read(path, "public key")
    serialization, ed25519 = _serialization(), _ed25519()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        hint = " (that is a private key: give its .pub file)" if b"PRIVATE KEY" in data else ""
        raise TrustError(f"{path}: not a PEM public key{hint}; `engine bundle keygen -o NAME` writes "
                         "one to NAME.pub") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise TrustError(f"{path}: not an Ed25519 public key; `engine bundle keygen -o NAME` writes one to NAME.pub")
    public: Ed25519PublicKey = key
    return public


def load_public_keys(paths: list[Path]) -> "dict[str, Ed25519PublicKey]":
    """Key id -> key, for every path (each must load)."""
    return {key_id(key): key for key in (load_public_key(path) for path in paths)}


def generate(private_path: Path) -> tuple[Path, str]:
    """A new key pair: the private key at `private_path` (mode 0600, never overwritten) and the
    public key at `private_path` + `.pub`. Returns the public key's path and the key id."""
    serialization, ed25519 = _serialization(), _ed25519()
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise TrustError(f"{path}: already exists; keygen never overwrites a key, choose another name")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        # Created with mode 0600 from the start: the key is never readable by others, not even briefly.
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as exc:
        raise TrustError(f"{exc.filename or private_path}: cannot write the key: {exc.strerror or exc}") from None
    return public_path, key_id(key.public_key())
