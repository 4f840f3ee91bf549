"""`engine test PATH...`: run the graph tests in test files (docs/testing.md)."""

import argparse
import sys
import time

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.registry import default_registry
from adapters.cli.run_graph import log_to_stderr
from adapters.testing.report import FORMATS, render_github_annotations, render_json, render_junit, render_text
from adapters.testing.suite import FAILED, find_test_files, run_files, selector
from loader.api import TEST_SUFFIXES
from loader.problems import has_errors


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    test = commands.add_parser("test", help="run the graph tests in *.test.yaml / *.test.toml files")
    test.add_argument("paths", nargs="+", metavar="PATH", help="test files, or directories searched recursively")
    test.add_argument("-k", dest="pattern", metavar="PATTERN",
                      help="only tests whose name contains PATTERN (case-insensitive; `*` and `?` as wildcards)")
    test.add_argument("--update", action="store_true",
                      help="write or refresh the snapshots of `snapshot: true` conditions instead of comparing")
    test.add_argument("--format", choices=FORMATS, default="text",
                      help="text (default), json, junit (JUnit XML) or github (workflow annotations)")


def cmd_test(args: argparse.Namespace) -> int:
    files, missing = find_test_files(args.paths)
    for raw in missing:
        print(f"engine: error: no such file or directory: {raw}", file=sys.stderr)
    if missing:
        return EXIT_USAGE
    if not files:
        print("engine: error: no test files (" + ", ".join(TEST_SUFFIXES) + ") found in " + ", ".join(args.paths),
              file=sys.stderr)
        return EXIT_USAGE
    log_to_stderr()  # what nodes warn about (dropped events) as `engine run` shows it
    started = time.perf_counter()
    outcomes = run_files(files, default_registry(), selector(args.pattern), args.update)
    seconds = time.perf_counter() - started
    render = {"json": render_json, "junit": render_junit, "github": render_github_annotations}.get(
        args.format, render_text)
    sys.stdout.write(render(outcomes, seconds))
    if any(p.code == "HR001" for o in outcomes for p in o.problems):
        return EXIT_USAGE
    failed = any(r.outcome == FAILED for o in outcomes for r in o.results)
    broken = any(has_errors(o.problems) for o in outcomes) or any(
        n.startswith("cannot") for o in outcomes for n in o.notes)
    return EXIT_PROBLEMS if failed or broken else EXIT_OK
