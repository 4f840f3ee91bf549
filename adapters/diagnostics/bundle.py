"""The diagnostics bundle: a `.tar.gz` of JSON and text files under one folder, with
`manifest.json` listing every other file with its size and SHA-256.

Every string that goes in passes a last net first (engine/secrets.py): URL passwords and
`password=` pairs in texts and JSON strings, and the literal secrets this command knows (the control token it used)
become `****`. The file is written next to its final name and renamed, mode 0600.
"""

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Final

from engine.secrets import MASK, mask_known

FORMAT: Final = 1  # of the bundle's layout and manifest, for tools that read it
MANIFEST: Final = "manifest.json"


def scrub(value: object, known: tuple[str, ...]) -> object:
    """`value` (JSON-like) with the net passed over each string, keys included."""
    if isinstance(value, str):
        return mask_known(value, known)
    if isinstance(value, dict):
        return {str(scrub(k, known)): scrub(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, known) for item in value]
    return value


def scrub_json_text(text: str, known: tuple[str, ...]) -> str:
    """JSON text with each known literal secret as `****` (no patterns: they would break JSON)."""
    for secret in known:
        text = text.replace(json.dumps(secret)[1:-1], MASK)
    return text


class Bundle:
    def __init__(self, folder: str, known: tuple[str, ...], created: float) -> None:
        self.folder = folder  # the one top folder every member is under
        self.known = tuple(sorted((k for k in known if k), key=lambda k: (-len(k), k)))
        self.created = created
        self.files: dict[str, bytes] = {}

    def add_json(self, path: str, value: object) -> None:
        text = json.dumps(scrub(value, self.known), indent=2, ensure_ascii=False, default=str)
        self.files[path] = (scrub_json_text(text, self.known) + "\n").encode("utf-8")

    def add_text(self, path: str, text: str) -> None:
        lines = [mask_known(line, self.known) for line in text.splitlines()]
        self.files[path] = ("\n".join(lines) + "\n").encode("utf-8")

    def add_json_lines(self, path: str, values: list[object]) -> None:
        lines = [scrub_json_text(json.dumps(scrub(v, self.known), ensure_ascii=False, default=str), self.known)
                 for v in values]
        self.files[path] = "".join(line + "\n" for line in lines).encode("utf-8")

    def manifest(self) -> bytes:
        entries = [{"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                   for path, data in sorted(self.files.items())]
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        document = {"format": FORMAT, "created": created, "folder": self.folder, "files": entries}
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    def write(self, target: Path) -> int:
        """Writes the bundle to `target` (replacing it in one step); returns its size in bytes."""
        members = {MANIFEST: self.manifest(), **dict(sorted(self.files.items()))}
        directory = target.parent if str(target.parent) else Path(".")
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".writing", dir=directory)
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                    for path, data in members.items():
                        info = tarfile.TarInfo(f"{self.folder}/{path}")
                        info.size = len(data)
                        info.mtime = int(self.created)
                        info.mode = 0o644
                        tar.addfile(info, io.BytesIO(data))
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(temporary, 0o600)  # a support bundle describes the system: not for every local user
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return target.stat().st_size
