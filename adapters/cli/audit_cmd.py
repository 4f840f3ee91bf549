"""`engine audit verify FILE`: check the hash chain of a control-plane audit log."""

import argparse
import sys
from pathlib import Path

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    audit = commands.add_parser("audit", help="the control plane's audit log (HEADRACE_AUDIT_LOG)")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check that no record was edited, removed or reordered; exit 1 if so")
    verify.add_argument("file", metavar="FILE", help="the audit log, one JSON record a line")


def cmd_audit(args: argparse.Namespace) -> int:
    """`engine audit verify`, the only action so far: exit 0 intact, 1 broken, 2 unreadable."""
    from adapters.control.audit import check  # grpc loads only here

    path = Path(args.file)
    if not path.exists():
        print(f"engine: error: no such file: {args.file}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = check(path)
    except OSError as exc:
        print(f"engine: error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    noun = "record" if result.records == 1 else "records"
    if not result.problems:
        print(f"{args.file}: {result.records} {noun}, chain intact")
        return EXIT_OK
    for problem in result.problems:
        print(problem)
    count = len(result.problems)
    print(f"{args.file}: {result.records} {noun}, chain broken ({count} problem{'' if count == 1 else 's'})")
    return EXIT_PROBLEMS
