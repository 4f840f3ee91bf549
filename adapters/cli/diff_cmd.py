"""`engine diff OLD NEW` and `engine diff --git REF [DIR]`: what `engine serve` would do if
its directory changed from OLD to NEW, decided by the reload's own code
(adapters/serve/decide.py) and shown as text, markdown or JSON (docs/diff.md)."""

import argparse
import json
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.registry import default_registry
from adapters.diff.inputs import DiffInputError, git_root, read_git_side, read_side, relative_in_repo
from adapters.diff.render import markdown, text
from adapters.diff.report import OldGraph, changes, report
from adapters.serve.decide import Current, decide
from adapters.serve.running import RUNNING
from adapters.serve.scan import Snapshot
from adapters.serve.vocabulary import REJECTED
from engine.plan_chains import run_chains
from engine.secrets import mask_known, plan_secret_texts
from engine.spec import SpecRegistry
from loader.api import load_text

FORMATS: Final = ("text", "markdown", "json")
DEFAULT_GIT_DIR: Final = "graphs/"


def add_diff_parser(commands: Any) -> None:
    diff = commands.add_parser(
        "diff", help="what `engine serve` would do with a change: OLD NEW (files or directories), "
                     "or --git REF [DIR]")
    diff.add_argument("paths", nargs="*", metavar="PATH",
                      help="OLD NEW (two graph files or two directories); with --git: DIR (default graphs/)")
    diff.add_argument("--git", metavar="REF",
                      help="compare DIR as of git revision REF with DIR in the working tree")
    diff.add_argument("--format", choices=FORMATS, default="text",
                      help="text (default), markdown (a pull-request comment), json (docs/diff.md)")
    diff.add_argument("--exit-code", action="store_true",
                      help="exit 1 when anything would change (default: only when a file would be rejected)")


def _sides(args: argparse.Namespace) -> tuple[Snapshot, Snapshot]:
    if args.git is not None:
        if len(args.paths) > 1:
            raise DiffInputError("--git takes one directory: engine diff --git REF [DIR]")
        shown = Path(args.paths[0] if args.paths else DEFAULT_GIT_DIR)
        root = git_root()
        inside = relative_in_repo(root, shown)
        old = read_git_side(root, args.git, inside, shown)
        new = read_side(shown) if shown.is_dir() else {}
        return old, new
    if len(args.paths) != 2:
        raise DiffInputError("give OLD and NEW (two graph files or two directories), or --git REF [DIR]")
    old_path, new_path = Path(args.paths[0]), Path(args.paths[1])
    if old_path.is_dir() != new_path.is_dir() and old_path.exists() and new_path.exists():
        raise DiffInputError(f"{old_path} and {new_path}: compare two files or two directories, not one of each")
    if old_path.is_dir() or new_path.is_dir():
        return read_side(old_path), read_side(new_path)
    # Two files are one graph file before and after, whatever their names.
    return read_side(old_path, new_path.name), read_side(new_path)


def _running(old: Snapshot, registry: SpecRegistry,
             env: Mapping[str, str]) -> tuple[dict[str, Current], dict[str, OldGraph]]:
    """The old side as serve would be running it: every old file that loads, running."""
    current: dict[str, Current] = {}
    graphs: dict[str, OldGraph] = {}
    for name, file in sorted(old.items()):
        if file.error:
            graphs[name] = OldGraph(None)
            continue
        loaded = load_text(str(file.path), file.text, registry, env, keep_unset=True)
        plan = loaded.plan if loaded.ok else None
        if plan is None:
            graphs[name] = OldGraph(None)
            continue
        graphs[name] = OldGraph(plan, loaded.migrated_from or plan.format_version)
        current[name] = Current(plan, plan.content_hash(), RUNNING, partial(run_chains, plan, registry))
    return current, graphs


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0; 1 when a file would be rejected, or with --exit-code when anything would change;
    2 on a usage error, an unreadable input, a missing git revision or a path outside the repository."""
    import os

    try:
        old, new = _sides(args)
    except DiffInputError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    registry = default_registry()
    env = dict(os.environ)
    current, old_graphs = _running(old, registry, env)
    decisions = decide(current, new, registry, env, keep_unset=True)
    out = report(decisions, old_graphs, registry)
    if args.format == "json":
        shown = json.dumps(out, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    elif args.format == "markdown":
        shown = markdown(out)
    else:
        shown = text(out)
    # The last net: no secret value of either side leaves, whatever path it took.
    secrets: set[str] = set()
    for plan in [c.plan for c in current.values()] + [d.plan for d in decisions if d.plan is not None]:
        secrets.update(plan_secret_texts(plan, registry))
    sys.stdout.write(mask_known(shown, tuple(sorted(secrets, key=lambda t: (-len(t), t)))))
    if any(d.result == REJECTED for d in decisions):
        return EXIT_PROBLEMS
    return EXIT_PROBLEMS if args.exit_code and changes(out) else EXIT_OK
