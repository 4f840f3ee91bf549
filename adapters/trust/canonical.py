"""The signed form of a graph file: what a signature covers, and nothing engine-internal.

A file is read (YAML or TOML, as the loader reads it), upgraded with `migrations/` to the
graph format named in the signature, and written as canonical JSON: UTF-8, no whitespace,
mappings in the order written. It is taken **before interpolation**, so `${VAR}` is signed
as written and CI signs without production's secrets. Comments, quoting, indentation and
flow or block style do not reach it; any change of a value, a key or a list does.

Mappings keep their written order instead of sorting their keys: some are ordered (a map's
`set:` assigns in order, and its plan changes when they are swapped), and a reorder that
changes what runs must not keep a signature valid. Because the target format is the one
recorded in the signature and earlier migration steps never change, an engine upgrade
that adds a format reproduces the same bytes and keeps old signatures valid.
"""

import datetime
import hashlib
import json
import math
from typing import Final

from loader.problems import ERROR
from loader.read_toml import read_toml
from loader.read_yaml import read_yaml
from migrations import SUPPORTED_VERSIONS, upgrade
from migrations.change import Path as KeyPath

BUNDLE_FORMAT: Final = "headrace-bundle-v1"
DIGEST_PREFIX: Final = "sha256:"


def canonical_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def digest(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def _plain(value: object) -> object:
    """JSON values only: a TOML date or time becomes `{"$time": ISO}`, a non-finite float
    `{"$float": "inf"}`, so no two different documents give the same text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return {"$time": value.isoformat()}
    return value


def _remove(data: object, path: KeyPath) -> None:
    """What a migration decision removes to keep the old behaviour (as the loader does)."""
    for part in path[:-1]:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return
    if path and isinstance(data, dict):
        data.pop(path[-1], None)


def canonical_document(file: str, text: str, graph_format: int) -> bytes:
    """The canonical bytes of one graph file's document at `graph_format`. Raises ValueError
    with one line (`FILE:LINE:COL: ...`) when the file cannot be read as a graph document at
    that format."""
    reader = read_toml if file.endswith(".toml") else read_yaml
    doc, problems = reader(file, text.removeprefix("\ufeff"))
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        first = errors[0]
        raise ValueError(f"{first.file}:{first.line}:{first.column}: {first.code} {first.message}")
    data = doc.data
    if not isinstance(data, dict):
        raise ValueError(f"{file}:1:1: the top level of a graph file must be a mapping")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{file}: `version` is missing or not one this engine reads")
    if version > graph_format:
        raise ValueError(f"{file}: written in graph format {version}, newer than the signed format {graph_format}")
    _, decisions = upgrade(data, graph_format)
    for decision in decisions:
        _remove(data, decision.keep_behaviour_by_removing)
    return canonical_json(_plain(data))


def document_digest(file: str, text: str, graph_format: int) -> str:
    """`sha256:HEX` of the canonical document; ValueError as `canonical_document`."""
    return digest(canonical_document(file, text, graph_format))
