"""`engine migrate PATH... [--to N] [--check] [--diff]`: rewrite graph files in a newer format.

Each file is upgraded by the steps in `migrations/` (the same ones the loader runs in memory)
and written back keeping its comments, key order, quotes and layout (`migrate_yaml`,
`migrate_toml`). Nothing is half-done: a file with a decision to make (HR080), or whose
rewrite would not mean exactly what the steps say, is left as it is. A rewrite goes through
a temporary file in the same directory (its name starts with '.', which `engine serve`
ignores) and `os.replace`, so a watcher sees the old file or the new one, never a mix.
"""

import argparse
import copy
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from adapters.atomic_file import replace_file
from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.migrate_common import RewriteError, Rewritten
from loader.api import GRAPH_SUFFIXES, graph_files, read_graph_text
from loader.document import Document
from loader.problems import ERROR, Problem, format_path, has_errors
from loader.read_toml import read_toml
from loader.read_yaml import read_yaml
from loader.report import render_text
from migrations import CURRENT_VERSION, SUPPORTED_VERSIONS, upgrade

_SCHEMA_COMMENT: Final = re.compile(r"^(#\s*(?:yaml-language-server:\s*\$schema=|:schema\s+)\S*?graph\.v)(\d+)(\.json)")


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    migrate = commands.add_parser("migrate", help="rewrite graph files in a newer format version, comments kept")
    migrate.add_argument("paths", nargs="+", metavar="PATH", help="graph files or directories of them")
    migrate.add_argument("--to", type=int, default=CURRENT_VERSION, metavar="N",
                         help=f"the version to write (default {CURRENT_VERSION}, the newest)")
    migrate.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 when a file would change (for CI)")
    migrate.add_argument("--diff", action="store_true", help="write nothing; print the changes as a unified diff")
    migrate.add_argument("-v", "--verbose", action="store_true", help="print every change, one a line")


def _versions() -> str:
    return ", ".join(str(v) for v in SUPPORTED_VERSIONS)


@dataclass
class _Tally:
    migrated: int = 0
    current: int = 0
    failed: int = 0
    missing: list[str] = field(default_factory=list)


class _ChangedMeanwhile(Exception):
    pass


def _problem(doc: Document, code: str, message: str, hint: str, path: tuple[str | int, ...] = ()) -> Problem:
    pos = doc.locate(path, at_key=True)
    return Problem(code, ERROR, doc.file, pos.line, pos.column, format_path(path), message, hint)


def _version_problem(doc: Document, to: int) -> tuple[int | None, Problem | None]:
    """The file's version, or the problem that stops it from being migrated."""
    data = doc.data
    if not isinstance(data, dict):
        return None, _problem(doc, "HR004", "the top level of a graph file must be a mapping",
                              "start with `version: 1` and a `nodes:` mapping")
    if "version" not in data:
        return None, _problem(doc, "HR010", "missing `version`",
                              "add the version the file was written for at the top (this engine understands "
                              f"versions {_versions()})")
    version = data["version"]
    understood = f"this engine understands versions {_versions()}"
    if isinstance(version, bool) or not isinstance(version, int) or version < SUPPORTED_VERSIONS[0]:
        shown = "null" if version is None else repr(version)
        return None, _problem(doc, "HR011", f"unsupported version {shown}", understood, ("version",))
    if version > CURRENT_VERSION:
        return None, _problem(doc, "HR011", f"version {version} is newer than this engine ({understood})",
                              "read it with a newer engine; `engine migrate` does not go back", ("version",))
    if version > to:
        return None, _problem(doc, "HR011", f"version {version} is newer than --to {to}",
                              "migrations only go forward", ("version",))
    return version, None


def _first_difference(expected: Any, actual: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in list(expected) + [k for k in actual if k not in expected]:
            if expected.get(key, _first_difference) != actual.get(key, _first_difference):
                return _first_difference(expected.get(key), actual.get(key), path + (key,))
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (a, b) in enumerate(zip(expected, actual)):
            if a != b:
                return _first_difference(a, b, path + (i,))
    return path


def _schema_comment(text: str, version: int, to: int) -> tuple[str, str | None]:
    """Point a leading `$schema` comment at the new version's schema, so that editors check
    the file against the format it is now in."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        match = _SCHEMA_COMMENT.match(line)
        if match and int(match.group(2)) == version:
            lines[i] = match.group(1) + str(to) + match.group(3) + line[match.end():]
            note = (f"line {i + 1}: $schema graph.v{version}.json -> graph.v{to}.json "
                    "(editors check the file against the schema of its version)")
            return "\n".join(lines), note
    return text, None


def _diff(old: str, new: str, shown: str) -> str:
    out: list[str] = []
    for line in difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     f"a/{shown}", f"b/{shown}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _spelled_like(original: str, new: str) -> str:
    """`new` (plain `\n` lines) with the original's byte-order mark, line ends and final newline."""
    if not original.endswith("\n"):
        new = new.removesuffix("\n")
    if "\r\n" in original:
        new = new.replace("\n", "\r\n")
    return ("\ufeff" if original.startswith("\ufeff") else "") + new


def write_atomic(path: Path, data: bytes, expected: bytes) -> None:
    """Replace the file's content by `data` in one step (adapters/atomic_file.py); refuses
    (`_ChangedMeanwhile`) when the file no longer holds `expected`."""
    def unchanged(real: Path) -> None:
        if real.read_bytes() != expected:
            raise _ChangedMeanwhile()

    replace_file(path, data, unchanged)


class _Migration:
    def __init__(self, args: argparse.Namespace) -> None:
        self.to: int = args.to
        self.check: bool = args.check
        self.diff: bool = args.diff
        self.verbose: bool = args.verbose
        self.tally = _Tally()
        # With --diff, standard output is only the patch.
        self.report: TextIO = sys.stderr if self.diff else sys.stdout

    def problems(self, problems: list[Problem], text: str) -> None:
        sys.stderr.write(render_text(problems, {p.file: text for p in problems}))
        self.tally.failed += 1

    def cannot(self, shown: str, why: str) -> None:
        print(f"{shown}: not migrated: {why}", file=sys.stderr)
        self.tally.failed += 1

    def file(self, path: Path, shown: str) -> None:
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            _, problem = read_graph_text(path)
            if problem is not None:
                self.problems([Problem(problem.code, problem.severity, shown, problem.line, problem.column,
                                       problem.path, problem.message, problem.hint)], "")
            else:
                self.cannot(shown, "the file cannot be read")
            return
        body = text.removeprefix("\ufeff").replace("\r\n", "\n")
        toml = path.suffix == ".toml"
        doc, problems = (read_toml if toml else read_yaml)(shown, body)
        if has_errors(problems):
            self.problems(problems, body)
            return
        version, problem = _version_problem(doc, self.to)
        if problem is not None or version is None:
            self.problems([problem] if problem else [], body)
            return
        if version == self.to:
            self.tally.current += 1
            print(f"{shown}: up to date (version {version})", file=self.report)
            return
        try:
            rewritten = self.rewrite(doc, body, toml)
        except RewriteError as exc:
            self.cannot(shown, str(exc))
            return
        if rewritten.decisions:
            self.problems([_problem(doc, "HR080", d.message, "change the file as you decide, then run "
                                    "`engine migrate` on it again", d.path) for d in rewritten.decisions], body)
            return
        new, note = _schema_comment(rewritten.text, version, self.to)
        described = [change.describe() for change in rewritten.changes] + ([note] if note else [])
        new = _spelled_like(text, new)
        if self.diff:
            sys.stdout.write(_diff(text, new, shown))
        if not (self.check or self.diff):
            try:
                write_atomic(path, new.encode("utf-8"), raw)
            except _ChangedMeanwhile:
                self.cannot(shown, "the file changed while it was being migrated; run again")
                return
            except OSError as exc:
                self.cannot(shown, f"cannot write it: {exc.strerror or exc}")
                return
        self.tally.migrated += 1
        verb = "would migrate" if self.check or self.diff else "migrated"
        count = len(described)
        print(f"{shown}: {verb} {version} -> {self.to} ({count} change{'' if count == 1 else 's'})",
              file=self.report)
        if self.verbose:
            for line in described:
                print(f"  {line}", file=self.report)

    def rewrite(self, doc: Document, body: str, toml: bool) -> Rewritten:
        """The rewritten text, checked against the steps run on the plain document: it must
        read back as exactly what they give."""
        if toml:
            from adapters.cli.migrate_toml import rewrite_toml

            rewritten = rewrite_toml(body, self.to)
        else:
            from adapters.cli.migrate_yaml import rewrite_yaml

            rewritten = rewrite_yaml(body, self.to)
        if rewritten.decisions:
            return rewritten
        expected = copy.deepcopy(doc.data)
        assert isinstance(expected, dict)
        upgrade(expected, self.to)
        again, problems = (read_toml if toml else read_yaml)(doc.file, rewritten.text)
        if has_errors(problems) or again.data != expected:
            where = format_path(_first_difference(expected, again.data)) or "the top level"
            likely = "dotted keys" if toml else "YAML anchors or merge keys"
            raise RewriteError(f"the rewritten file would not say what the migration gives at {where} "
                               f"({likely} there?); make the changes by hand (docs/migrations.md lists them)")
        return rewritten


def _files(paths: list[str], tally: _Tally) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            chosen = [(p, str(p)) for p in graph_files(path)]
        elif path.exists():
            chosen = [(path, raw)]
        else:
            tally.missing.append(raw)
            continue
        for file, shown in chosen:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                found.append((file, shown))
    return found


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.to not in SUPPORTED_VERSIONS:
        print(f"engine: error: --to {args.to}: this engine knows versions {_versions()}", file=sys.stderr)
        return EXIT_USAGE
    run = _Migration(args)
    files = _files(args.paths, run.tally)
    for raw in run.tally.missing:
        print(f"engine: error: no such file or directory: {raw}", file=sys.stderr)
    if not files and not run.tally.missing:
        print("engine: error: no graph files (" + ", ".join(GRAPH_SUFFIXES) + ") found in " + ", ".join(args.paths),
              file=sys.stderr)
        return EXIT_USAGE
    for path, shown in files:
        run.file(path, shown)
    tally = run.tally
    if len(files) > 1:
        verb = "would be migrated" if args.check or args.diff else "migrated"
        print(f"{len(files)} files: {tally.migrated} {verb}, {tally.current} up to date, "
              f"{tally.failed} not migrated", file=run.report)
    if args.check and tally.migrated:
        print("run `engine migrate` without --check to rewrite them", file=run.report)
    if tally.missing:
        return EXIT_USAGE
    if tally.failed or (args.check and tally.migrated):
        return EXIT_PROBLEMS
    return EXIT_OK
