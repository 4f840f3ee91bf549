"""The loader pipeline: text -> document -> checked graph -> GraphPlan, collecting problems."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from engine.ids import NAME_PATTERN
from engine.plan import GraphPlan
from engine.secrets import SHORTEST_KNOWN, mask_known
from engine.spec import SpecRegistry
from loader.check_schema import schema_problems
from loader.compile import compile_graph
from loader.document import Document, KeyPath
from loader.findings import family_problems
from loader.interpolate import interpolate
from loader.migrate import as_written, upgrade_document
from loader.problems import ERROR, Problem, has_errors
from loader.read_toml import read_toml
from loader.read_yaml import read_yaml
from loader.semantic import UNREAD_OUTPUT, check_graph
from migrations import CURRENT_VERSION, SUPPORTED_VERSIONS

GRAPH_SUFFIXES: Final = (".yaml", ".yml", ".toml")
# Graph tests (`engine test`) live beside their graphs and are never graphs themselves.
TEST_SUFFIXES: Final = (".test.yaml", ".test.yml", ".test.toml")


def is_graph_file(name: str) -> bool:
    return name.endswith(GRAPH_SUFFIXES) and not name.endswith(TEST_SUFFIXES) and not name.startswith(".")
_NAME: Final = re.compile(NAME_PATTERN)
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")


@dataclass
class LoadResult:
    file: str
    name: str = ""
    plan: GraphPlan | None = None
    text: str = ""
    name_line: int = 1
    name_column: int = 1
    problems: list[Problem] = field(default_factory=list)
    migrated_from: int = 0  # the version the file declares, when it was upgraded in memory
    version_line: int = 1
    version_column: int = 1

    @property
    def ok(self) -> bool:
        return self.plan is not None and not has_errors(self.problems)


def _problem(doc: Document, code: str, message: str, hint: str, key: str = "") -> Problem:
    pos = doc.locate((key,) if key else (), at_key=True)
    return Problem(code, ERROR, doc.file, pos.line, pos.column, key, message, hint)


def _version(data: dict[str, object]) -> int | None:
    """The declared version; None when missing, -1 when not one this engine knows."""
    if "version" not in data:
        return None
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        return -1
    return version


def _finish(result: LoadResult, doc: Document | None = None) -> LoadResult:
    if doc is not None and doc.secrets:  # the last net: no problem quotes a secret variable's text
        hidden = tuple(sorted({t for texts in doc.secrets.values() for t in texts if len(t) >= SHORTEST_KNOWN},
                              key=lambda t: (-len(t), t)))
        result.problems = [replace(p, message=mask_known(p.message, hidden), hint=mask_known(p.hint, hidden))
                           for p in result.problems]
    unique = {(p.code, p.line, p.column, p.path, p.message): p for p in result.problems}
    result.problems = sorted(unique.values(), key=Problem.sort_key)
    return result


def load_text(file: str, text: str, registry: SpecRegistry,
              env: Mapping[str, str] | None = None, keep_unset: bool = False) -> LoadResult:
    """Load one graph from its text; `file` names it in problems and gives the default name.
    `keep_unset`: an unset `${VAR}` stays as written (loader/interpolate.py)."""
    text = text.removeprefix("\ufeff")  # a byte-order mark some Windows editors write
    result = LoadResult(file=file, name=Path(file).stem, text=text)
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:  # text that did not come from a file: no UTF-8 file holds one
        before = text[:surrogate.start()]
        line, column = before.count("\n") + 1, surrogate.start() - (before.rfind("\n") + 1) + 1
        result.problems.append(Problem(
            "HR001", ERROR, file, line, column, "",
            f"the text is not valid Unicode: a lone surrogate (U+{ord(surrogate.group()):04X})",
            "send the graph as UTF-8 text"))
        return result
    reader = read_toml if file.endswith(".toml") else read_yaml
    doc, problems = reader(file, text)
    result.problems.extend(problems)
    if has_errors(problems):
        return _finish(result)
    if not isinstance(doc.data, dict):
        result.problems.append(_problem(doc, "HR004", "the top level of a graph file must be a mapping",
                                        "start with `version: 1` and a `nodes:` mapping"))
        return _finish(result)
    result.problems.extend(interpolate(doc, os.environ if env is None else env, keep_unset))
    data = doc.data
    assert isinstance(data, dict)
    name = data.get("name")
    if isinstance(name, str):
        result.name = name
        pos = doc.locate(("name",), at_key=True)
        result.name_line, result.name_column = pos.line, pos.column
    version = _version(data)
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    if version is None:
        hint = f"add `version: {CURRENT_VERSION}` at the top (this engine understands: {supported})"
        result.problems.append(_problem(doc, "HR010", "missing `version`", hint))
        return _finish(result, doc)
    if version < 0:
        declared = data["version"]
        hint = f"this engine understands version {supported}; a newer file needs a newer engine"
        spelled = f"version = {CURRENT_VERSION}" if doc.format == "toml" else f"version: {CURRENT_VERSION}"
        if isinstance(declared, str) and declared.strip().isdigit():
            hint = f"write the version as a number, without quotes: {spelled}"
        elif isinstance(declared, float) and declared.is_integer():
            hint = f"write the version as a whole number: {spelled}"
        elif declared is None:
            hint = f"write the version after the key: {spelled}"
        shown = "null" if declared is None else repr(declared)
        result.problems.append(_problem(doc, "HR011", f"unsupported version {shown}", hint, key="version"))
        return _finish(result, doc)
    result.problems.extend(schema_problems(doc, registry, version))
    pos = doc.locate(("version",), at_key=True)
    result.version_line, result.version_column = pos.line, pos.column
    moves: list[tuple[KeyPath, KeyPath]] = []
    if version < CURRENT_VERSION and not has_errors(result.problems):
        warnings, moves = upgrade_document(doc)
        result.problems.extend(warnings)
        result.migrated_from, version = version, CURRENT_VERSION
    if not isinstance(name, str) and not _NAME.match(result.name):
        result.problems.append(_problem(
            doc, "HR030", f"the graph name '{result.name}' (taken from the file name) is not a valid name",
            "add `name:` with lower case letters, digits and '_', or rename the file"))
    checked, problems = check_graph(doc, registry, result.name, version)
    # Node families check the graph as it will run, whenever the semantic checks found it whole:
    # beside schema errors too (the checked stage reads a refused value as its default), so a
    # file shows all its problems at once. The plan is kept only when there are no errors.
    plan = None if has_errors(problems) else compile_graph(checked, doc.secrets)
    if plan is not None:
        problems += family_problems(doc, registry, plan)
    if moves:  # name the paths as the user wrote them
        problems = [replace(p, path=as_written(p.path, moves)) for p in problems]
    result.problems.extend(problems)
    if has_errors(result.problems):
        # An unread-output warning is noise while a broken `from:` may be the cause.
        result.problems = [p for p in result.problems if p.code != UNREAD_OUTPUT]
    else:
        result.plan = plan
    return _finish(result, doc)


def read_graph_text(path: Path) -> tuple[str | None, Problem | None]:
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError as exc:
        before = exc.object[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        return None, Problem("HR001", ERROR, str(path), line, column, "",
                             f"the file is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} cannot be decoded",
                             "save the file as UTF-8 (it looks like Latin-1 or Windows-1252)")
    except OSError as exc:
        return None, Problem("HR001", ERROR, str(path), 0, 0, "", f"cannot read the file: {exc.strerror or exc}",
                             "check that the path exists and is readable")


def load_file(path: Path, registry: SpecRegistry, env: Mapping[str, str] | None = None) -> LoadResult:
    text, problem = read_graph_text(path)
    if problem is not None or text is None:
        return LoadResult(file=str(path), name=path.stem, problems=[problem] if problem else [])
    return load_text(str(path), text, registry, env)


def graph_files(directory: Path) -> list[Path]:
    """Graph files directly in `directory`; names starting with '.' and test files are skipped."""
    return sorted(p for p in directory.iterdir() if is_graph_file(p.name) and not p.is_dir())


def claim_name(claimed: dict[str, str], name: str, file: str) -> str:
    """The one rule for graph names in a directory: a name belongs to the first file that
    claims it (`claimed` maps names to files; `engine serve` starts it with the files already
    running, so a running graph keeps its name). Returns the file holding `name` when that is
    not `file` (then `file` is refused), else "" after recording the claim."""
    holder = claimed.setdefault(name, file)
    return holder if holder != file else ""


def load_directory(directory: Path, registry: SpecRegistry,
                   env: Mapping[str, str] | None = None) -> list[LoadResult]:
    results = [load_file(p, registry, env) for p in graph_files(directory)]
    claimed: dict[str, str] = {}
    for result in results:
        if not result.name:
            continue
        holder = claim_name(claimed, result.name, result.file)
        if holder:
            result.problems.append(Problem(
                "HR060", ERROR, result.file, result.name_line, result.name_column, "name",
                f"graph name '{result.name}' is also used by {holder}",
                "graph names are unique within a directory; set a different `name:`"))
            result.plan = None
    return results
