"""Loading the one graph file that `plan` and `run` take."""

import sys
from pathlib import Path

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from engine.plan import GraphPlan
from engine.spec import SpecRegistry
from loader.api import load_file
from loader.problems import has_errors
from loader.report import render_text


def load_plan(file: str, registry: SpecRegistry) -> tuple[GraphPlan | None, int]:
    """The file's plan, or None and the exit code. Problems (warnings too) go to stderr."""
    path = Path(file)
    if not path.is_file():
        print(f"engine: error: no such file: {file}", file=sys.stderr)
        return None, EXIT_USAGE
    result = load_file(path, registry)
    if result.problems:
        sys.stderr.write(render_text(result.problems, {result.file: result.text}))
    if result.plan is None or has_errors(result.problems):
        return None, EXIT_USAGE if any(p.code == "HR001" for p in result.problems) else EXIT_PROBLEMS
    return result.plan, EXIT_OK
