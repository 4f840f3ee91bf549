"""Reading the deployment files for tests/test_docker.py: Dockerfile instructions, the
.dockerignore rules, the YAML blocks of docs/deploy.md, the Compose Specification's schema."""

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML


class Instruction(NamedTuple):
    stage: int  # 0 for what comes before the first FROM, then 1, 2, ...
    keyword: str  # upper case: FROM, RUN, ...
    arguments: str  # continuation lines joined, comments removed


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, with Docker's rules for `\\` continuations and for
    comment lines (which may sit inside a continued instruction)."""
    instructions: list[Instruction] = []
    stage = 0
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, arguments = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), " ".join(arguments.split())))
    assert not pending, f"{path}: the last instruction ends in a continuation"
    return instructions


def docker_ignored(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore `patterns` leave `path` (relative, `/`-separated) out of the build
    context: a pattern matches from the context's root, `**` any number of directories, and
    a match on a directory leaves out everything in it; `!` lines re-include."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _docker_pattern(pattern[1:] if negate else pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def _docker_pattern(pattern: str) -> "re.Pattern[str]":
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_patterns(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def fenced_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.DOTALL)


def yaml_documents(text: str) -> list[Any]:
    return [document for document in YAML(typ="safe").load_all(text) if document is not None]


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON Schema, as check-jsonschema (a dev dependency) ships it
    for its compose hook; kept current by that project, never copied into this one."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    return schema
