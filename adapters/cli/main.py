"""`engine`: validate, plan, run and schema for graph files."""

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from adapters.allocator import keep_heap_headroom
from adapters.cli import audit_cmd, config_cmd, ctl, devices_cmd, graph_cmd, migrate_cmd, state_cmd, test_cmd, top_cmd
from adapters.cli.bundle_cmd import add_bundle_parser, cmd_bundle
from adapters.cli.diagnostics_cmd import add_diagnostics_parser, cmd_diagnostics
from adapters.cli.diff_cmd import add_diff_parser, cmd_diff
from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.one_graph import load_plan
from adapters.cli.registry import default_registry
from adapters.cli.run_graph import cmd_run
from engine.buildinfo import mode
from engine.plan import canonical_json
from engine.secrets import printable_plan
from loader.api import GRAPH_SUFFIXES, LoadResult, load_directory, load_file
from loader.problems import Problem, has_errors
from loader.report import render_github, render_json, render_text, summary
from loader.schema_gen import graph_schema
from loader.test_schema import graph_test_schema
from migrations import CURRENT_VERSION, SUPPORTED_VERSIONS

DEFAULT_LINGER_S = 5.0
SETTINGS_FILE_HELP = "engine settings file (default: $HEADRACE_CONFIG, else engine.toml if present)"


def version_line() -> str:
    try:
        version = metadata.version("headrace")
    except metadata.PackageNotFoundError:
        version = "0+source"
    return f"headrace {version} ({mode()}, {platform.python_implementation()} {platform.python_version()})"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more (got {text!r})")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="Headrace: declarative dataflow graphs.")
    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check graph files and directories; exit 1 on any error")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="graph files or directories of them")
    validate.add_argument("--format", choices=("text", "json", "github"), default="text",
                          help="text (default), json (an array of problems), github (workflow annotations)")
    validate.add_argument("--deprecations", choices=("warn", "error"), default="warn",
                          help="an older format version: a warning (default), or an error (exit 1) for CI")

    plan = commands.add_parser("plan", help="print the compiled plan of one graph file as canonical JSON")
    plan.add_argument("file", metavar="FILE")
    graph_cmd.add_parser(commands)
    add_diff_parser(commands)

    run = commands.add_parser("run", help="run one graph file until its sources are exhausted (or SIGINT/SIGTERM)")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--stats-file", metavar="PATH",
                     help="write node and edge counters as JSON to PATH when the run ends")
    run.add_argument("--config", metavar="FILE", help=SETTINGS_FILE_HELP)
    run.add_argument("--metrics-address", metavar="HOST:PORT",
                     help="serve Prometheus metrics at http://HOST:PORT/metrics while the graph runs")
    run.add_argument("--metrics-linger", metavar="SECONDS", type=_seconds, default=DEFAULT_LINGER_S,
                     help="after the graph ends, serve its final counters until one scrape reads them, "
                          f"for at most SECONDS (default {DEFAULT_LINGER_S:g}; 0: exit at once)")
    run.add_argument("--executor", choices=("local", "ray"), default=None,
                     help="where the instances of partitioned stages run: local (this process) or ray "
                          "(Ray actors); default: the `executor` setting (local)")
    run.add_argument("--ray-address", metavar="ADDR", default=None,
                     help="with --executor ray: auto, ray://HOST:PORT or a head node's HOST:PORT; "
                          "default: the `ray_address` setting, else a local Ray on this machine's cores")

    serve = commands.add_parser("serve", help="run every graph in DIR and follow DIR as it changes (SIGTERM drains)")
    serve.add_argument("directory", metavar="DIR")
    serve.add_argument("--config", metavar="FILE", help=SETTINGS_FILE_HELP)

    schema = commands.add_parser("schema", help="print the JSON Schema of the graph-file format")
    schema.add_argument("--version", dest="schema_version", type=int, default=CURRENT_VERSION,
                        metavar="N", help=f"format version (default {CURRENT_VERSION})")
    schema.add_argument("--tests", action="store_true",
                        help="the schema of graph test files (*.test.yaml) instead (docs/testing.md)")
    config_cmd.add_parser(commands)
    audit_cmd.add_parser(commands)
    devices_cmd.add_parser(commands)
    state_cmd.add_parser(commands)
    add_bundle_parser(commands)
    migrate_cmd.add_parser(commands)
    test_cmd.add_parser(commands)
    ctl.add_parser(commands)
    top_cmd.add_parser(commands)
    add_diagnostics_parser(commands)
    return parser


def _fail_usage(message: str) -> int:
    print(f"engine: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _collect(paths: Sequence[str]) -> tuple[list[LoadResult], list[str]]:
    registry = default_registry()
    results: list[LoadResult] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            results.extend(load_directory(path, registry))
        elif path.exists():
            results.append(load_file(path, registry))
        else:
            missing.append(raw)
    return results, missing


def _deprecation(result: LoadResult, severity: str) -> Problem:
    return Problem("HR081", severity, result.file, result.version_line, result.version_column, "version",
                   f"format version {result.migrated_from} is deprecated (this engine upgrades it in memory)",
                   f"run `engine migrate {result.file}` to rewrite it as version {CURRENT_VERSION}, comments kept")


def cmd_validate(paths: Sequence[str], fmt: str, deprecations: str = "warn") -> int:
    results, missing = _collect(paths)
    problems: list[Problem] = []
    for r in results:
        problems += r.problems
        # Said of files that are otherwise valid: a broken file has more pressing problems.
        if r.migrated_from and not has_errors(r.problems):
            problems.append(_deprecation(r, "error" if deprecations == "error" else "warning"))
    if fmt == "json":
        sys.stdout.write(render_json(problems))
    elif fmt == "github":
        sys.stdout.write(render_github(problems))
    else:
        sys.stdout.write(render_text(problems, {r.file: r.text for r in results}))
        sys.stdout.write(summary(problems, len(results)))
    for raw in missing:
        print(f"engine: error: no such file or directory: {raw}", file=sys.stderr)
    if missing or any(p.code == "HR001" for p in problems):
        return EXIT_USAGE
    if not results:
        return _fail_usage("no graph files (" + ", ".join(GRAPH_SUFFIXES) + ") found in " + ", ".join(paths))
    return EXIT_PROBLEMS if has_errors(problems) else EXIT_OK


def cmd_plan(file: str) -> int:
    registry = default_registry()
    plan, code = load_plan(file, registry)
    if plan is not None:
        # Secret parameters are printed masked; `hash` stays the real plan's (docs/plan.md).
        sys.stdout.write(canonical_json(printable_plan(plan, registry), indent=2) + "\n")
    return code


def cmd_schema(version: int, tests: bool = False) -> int:
    if tests:
        sys.stdout.write(json.dumps(graph_test_schema(), indent=2) + "\n")
        return EXIT_OK
    if version not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        return _fail_usage(f"no schema for version {version}; this engine knows version {known}")
    sys.stdout.write(json.dumps(graph_schema(default_registry(), version), indent=2) + "\n")
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return cmd_validate(args.paths, args.format, args.deprecations)
    if args.command == "plan":
        return cmd_plan(args.file)
    if args.command == "graph":
        return graph_cmd.cmd_graph(args)
    if args.command == "diff":
        return cmd_diff(args)
    if args.command == "run":
        keep_heap_headroom()
        return cmd_run(args.file, args.stats_file, args.config, args.metrics_address, args.metrics_linger,
                       args.executor, args.ray_address)
    if args.command == "serve":
        from adapters.cli.serve_cmd import cmd_serve  # watchfiles and the settings load only here

        keep_heap_headroom()
        return cmd_serve(args.directory, args.config)
    if args.command == "config":
        return config_cmd.cmd_config(args)
    if args.command == "audit":
        return audit_cmd.cmd_audit(args)
    if args.command == "devices":
        return devices_cmd.cmd_devices(args)
    if args.command == "state":
        return state_cmd.cmd_state(args)
    if args.command == "bundle":
        return cmd_bundle(args)
    if args.command == "migrate":
        return migrate_cmd.cmd_migrate(args)
    if args.command == "ctl":
        return ctl.cmd_ctl(args)
    if args.command == "diagnostics":
        return cmd_diagnostics(args)
    if args.command == "top":
        return top_cmd.cmd_top(args)
    if args.command == "test":
        return test_cmd.cmd_test(args)
    return cmd_schema(args.schema_version, args.tests)


def main() -> None:
    try:
        code = run()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = EXIT_OK
    sys.exit(code)


if __name__ == "__main__":
    main()
