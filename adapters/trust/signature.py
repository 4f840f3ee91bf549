"""Signing and verifying graph files.

A signature file is JSON: `format` (headrace-bundle-v1), `kind` (`directory` for a whole
directory's `.headrace-signature`, `file` for one file's `FILE.sig`), `graph_format` (the
graph format the documents were upgraded to), `files` (file name -> digest of its canonical
document, adapters/trust/canonical.py), then `key_id`, `digest` (of the signed message) and
`signature` (Ed25519, base64). The signed message is the canonical JSON of the first four:
the kind is in it, so one file's signature cannot pass for a directory holding only that file.

A directory is valid when every graph file in it matches `.headrace-signature`, or matches
its own `.NAME.sig` (how `engine ctl apply` keeps a signed file), and no file the directory
signature lists is gone.
"""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from adapters.serve.scan import Snapshot
from adapters.trust.canonical import BUNDLE_FORMAT, canonical_json, digest, document_digest
from adapters.trust.keys import TrustError, key_id
from migrations import CURRENT_VERSION, SUPPORTED_VERSIONS

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_NAME: Final = ".headrace-signature"
DIRECTORY: Final = "directory"
FILE: Final = "file"
SIGN_HINT: Final = "sign it with `engine bundle sign DIR --key KEY`"


def file_signature_name(name: str) -> str:
    """Where a signed file applied with `engine ctl apply` keeps its signature in the directory."""
    return f".{name}.sig"


@dataclass(frozen=True)
class Signed:
    kind: str
    graph_format: int
    files: dict[str, str]
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        return canonical_json({"format": BUNDLE_FORMAT, "kind": self.kind, "graph_format": self.graph_format,
                               "files": self.files})

    def to_text(self) -> str:
        body = {"format": BUNDLE_FORMAT, "kind": self.kind, "graph_format": self.graph_format,
                "files": self.files, "key_id": self.key_id, "digest": digest(self.message()),
                "signature": base64.b64encode(self.signature).decode("ascii")}
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def sign(kind: str, files: Mapping[str, str], key: "Ed25519PrivateKey") -> Signed:
    """`files`: name -> text. Raises TrustError when a file cannot be read as a graph."""
    digests: dict[str, str] = {}
    for name in sorted(files):
        try:
            digests[name] = document_digest(name, files[name], CURRENT_VERSION)
        except ValueError as exc:
            raise TrustError(f"cannot sign {exc}; fix the file first") from None
    unsigned = Signed(kind, CURRENT_VERSION, digests, key_id(key.public_key()), b"")
    return Signed(kind, CURRENT_VERSION, digests, unsigned.key_id, key.sign(unsigned.message()))


def parse(where: str, data: bytes, kind: str) -> Signed:
    """A signature file's contents; TrustError (`WHERE: corrupt signature file: ...`) when unusable."""
    def corrupt(why: str) -> TrustError:
        return TrustError(f"{where}: corrupt signature file: {why}; sign again")

    try:
        body: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt("not JSON") from None
    if not isinstance(body, dict):
        raise corrupt("not a JSON object")
    if body.get("format") != BUNDLE_FORMAT:
        raise corrupt(f"format is {body.get('format')!r}, this engine reads {BUNDLE_FORMAT!r}")
    if body.get("kind") != kind:
        raise corrupt(f"it signs a {body.get('kind')!r}, not a {kind}")
    graph_format = body.get("graph_format")
    if isinstance(graph_format, bool) or not isinstance(graph_format, int):
        raise corrupt("graph_format is not a number")
    if graph_format not in SUPPORTED_VERSIONS:
        raise TrustError(f"{where}: signed at graph format {graph_format}, which this engine cannot read "
                         f"(it reads {', '.join(str(v) for v in SUPPORTED_VERSIONS)}); upgrade the engine")
    files = body.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise corrupt("files is not a mapping of names to digests")
    for name in ("key_id", "digest", "signature"):
        if not isinstance(body.get(name), str):
            raise corrupt(f"{name} is missing")
    try:
        raw = base64.b64decode(body["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise corrupt("signature is not base64") from None
    signed = Signed(kind, graph_format, dict(files), body["key_id"], raw)
    if body["digest"] != digest(signed.message()):
        raise corrupt("its digest does not match its files (edited?)")
    return signed


def check(where: str, signed: Signed, keys: "Mapping[str, Ed25519PublicKey]") -> None:
    """TrustError unless `signed` is a valid signature by one of `keys`."""
    key = keys.get(signed.key_id)
    if key is None:
        trusted = ", ".join(sorted(keys)) or "none"
        raise TrustError(f"{where}: signed by key {signed.key_id}, which is not trusted (trusted keys: {trusted})")
    invalid = _crypto_invalid_signature()
    try:
        key.verify(signed.signature, signed.message())
    except invalid:
        raise TrustError(f"{where}: the signature does not match what it lists (the signature file was "
                         "edited, or made with another key)") from None


def _crypto_invalid_signature() -> type[Exception]:
    from cryptography.exceptions import InvalidSignature  # only reached once keys are loaded

    return InvalidSignature


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)  # one line each; empty: valid
    key_ids: list[str] = field(default_factory=list)  # who signed what was checked
    files: list[str] = field(default_factory=list)  # the graph files the problems name

    @property
    def ok(self) -> bool:
        return not self.problems


def read_seal(directory: Path, snapshot: Snapshot) -> dict[str, bytes]:
    """The signature files that speak for `snapshot`: the directory's and each file's own
    (absent ones are left out). What serve compares between reloads along with the files."""
    seal: dict[str, bytes] = {}
    for name in [SIGNATURE_NAME, *(file_signature_name(n) for n in sorted(snapshot))]:
        try:
            seal[name] = (directory / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:  # unreadable: verification says so
            seal[name] = f"unreadable: {exc.strerror or exc}".encode()
    return seal


class _Digests:
    """Each file's canonical digest at a graph format, computed once."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.known: dict[tuple[str, int], str] = {}

    def of(self, name: str, graph_format: int) -> str:
        """The digest; ValueError (one line) when the file cannot be read as a graph."""
        cached = self.known.get((name, graph_format))
        if cached is not None:
            return cached
        file = self.snapshot[name]
        if file.error:
            raise ValueError(f"{name}: {file.error}")
        found = document_digest(name, file.text, graph_format)
        self.known[(name, graph_format)] = found
        return found


def verify(directory: Path, snapshot: Snapshot, seal: Mapping[str, bytes],
           keys: "Mapping[str, Ed25519PublicKey]") -> Verdict:
    """Whether the graph files in `snapshot`, with the signature files in `seal`, are signed
    by one of `keys`; every problem found, one line each."""
    verdict = Verdict()
    digests = _Digests(snapshot)
    listed: dict[str, str] = {}
    graph_format = CURRENT_VERSION
    bundle = seal.get(SIGNATURE_NAME)
    where = str(directory / SIGNATURE_NAME)
    if bundle is not None:
        try:
            signed = parse(where, bundle, DIRECTORY)
            check(where, signed, keys)
        except TrustError as exc:
            verdict.problems.append(str(exc))
            verdict.files = sorted(snapshot)
            return verdict
        listed, graph_format = signed.files, signed.graph_format
        verdict.key_ids.append(signed.key_id)
    for name in sorted(snapshot):
        problem = _file_problem(directory, name, listed, graph_format, digests, seal, keys, verdict)
        if problem:
            verdict.problems.append(problem)
            verdict.files.append(name)
    for name in sorted(set(listed) - set(snapshot)):
        verdict.problems.append(f"{name} was removed after signing; sign the directory again")
        verdict.files.append(name)
    if bundle is None and verdict.problems:
        verdict.problems.insert(0, f"{where} is missing; {SIGN_HINT}")
    return verdict


def _file_problem(directory: Path, name: str, listed: Mapping[str, str], graph_format: int, digests: _Digests,
                  seal: Mapping[str, bytes], keys: "Mapping[str, Ed25519PublicKey]", verdict: Verdict) -> str:
    """Why `name` is not covered by a signature ("" when it is)."""
    try:
        if name in listed and listed[name] == digests.of(name, graph_format):
            return ""
    except ValueError as exc:
        return f"{exc} (so it cannot match its signature)"
    own = seal.get(file_signature_name(name))
    if own is not None:
        where = str(directory / file_signature_name(name))
        try:
            signed = parse(where, own, FILE)
            check(where, signed, keys)
            if signed.files.get(name) == digests.of(name, signed.graph_format):
                verdict.key_ids.append(signed.key_id)
                return ""
        except (TrustError, ValueError) as exc:
            return str(exc)
    if name in listed:
        return f"{name} changed after signing; review the change and sign again"
    if listed:
        return f"{name} was added after signing; review it and sign the directory again"
    return f"{name} is not signed"


def check_file(name: str, text: str, signature: bytes, keys: "Mapping[str, Ed25519PublicKey]") -> str:
    """Why `signature` (a `FILE.sig`) does not sign `text` as the file `name` ("" when it does)."""
    if not signature:
        return (f"{name} has no signature and the engine accepts only signed graphs (trusted_keys): sign it with "
                f"`engine bundle sign-file {name} --key KEY` and apply it with --signature {name}.sig")
    where = f"the signature of {name}"
    try:
        signed = parse(where, signature, FILE)
        check(where, signed, keys)
        found = document_digest(name, text, signed.graph_format)
    except (TrustError, ValueError) as exc:
        return str(exc)
    if name not in signed.files:
        return f"{where} is for {', '.join(sorted(signed.files))}, not {name}; apply the file under its signed name"
    if signed.files[name] != found:
        return f"{name} does not match its signature (changed after signing); review it and sign it again"
    return ""
