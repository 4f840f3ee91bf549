"""`engine graph FILE`: the topology of one graph file's plan, as Mermaid (default),
Graphviz DOT, JSON, or an SVG/PNG picture drawn by Graphviz's `dot` program."""

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.one_graph import load_plan
from adapters.cli.registry import default_registry
from adapters.pictures.dot import dot
from adapters.pictures.mermaid import mermaid
from adapters.pictures.topology import Topology, topology

TEXT_FORMATS: Final[dict[str, Callable[[Topology], str]]] = {
    "mermaid": mermaid, "dot": dot, "json": Topology.to_json}
IMAGE_FORMATS: Final = ("svg", "png")
FORMATS: Final = (*TEXT_FORMATS, *IMAGE_FORMATS)
EXTENSIONS: Final = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot", ".json": "json",
                     ".svg": "svg", ".png": "png"}
INSTALL_GRAPHVIZ: Final = "install Graphviz (Debian: apt-get install graphviz; macOS: brew install graphviz)"
DOT_TIMEOUT_S: Final = 120


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    graph = commands.add_parser("graph", help="draw one graph file's topology: Mermaid, DOT, JSON, SVG or PNG")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=FORMATS,
                       help="mermaid, dot, json, or svg/png (drawn by Graphviz's dot); "
                            "default: from OUT's extension, else mermaid")
    graph.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of standard output")


def output_format(given: str | None, output: str | None) -> str:
    """--format, else the one OUT's extension names, else mermaid. ValueError: an OUT
    whose extension names none (and no --format)."""
    if given is not None:
        return given
    if output is None:
        return "mermaid"
    suffix = Path(output).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise ValueError(f"cannot tell the format from '{output}' (known extensions: {known}): give --format")
    return EXTENSIONS[suffix]


def cmd_graph(args: argparse.Namespace) -> int:
    """Exit 0; 1 when the graph has problems (printed as `engine plan` does) or dot fails;
    2 on a usage error, an unreadable file, or svg/png without Graphviz."""
    try:
        fmt = output_format(args.format, args.output)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    program = ""
    if fmt in IMAGE_FORMATS:
        program = shutil.which("dot") or ""
        if not program:
            return _fail(f"--format {fmt} needs Graphviz's `dot` program, which is not on PATH: {INSTALL_GRAPHVIZ}",
                         EXIT_USAGE)
        if fmt == "png" and args.output is None and sys.stdout.isatty():
            return _fail("a PNG is binary: write it to a file with -o OUT, or redirect standard output", EXIT_USAGE)
    registry = default_registry()
    plan, code = load_plan(args.file, registry)
    if plan is None:
        return code
    picture = topology(plan, registry)
    if fmt in TEXT_FORMATS:
        return _write(TEXT_FORMATS[fmt](picture).encode(), args.output)
    drawn = subprocess.run([program, f"-T{fmt}"], input=dot(picture).encode(), capture_output=True,
                           timeout=DOT_TIMEOUT_S, check=False)
    if drawn.returncode != 0:
        reason = drawn.stderr.decode(errors="replace").strip() or f"exit status {drawn.returncode}"
        return _fail(f"Graphviz's dot could not draw the graph: {reason}", EXIT_PROBLEMS)
    return _write(drawn.stdout, args.output)


def _write(data: bytes, output: str | None) -> int:
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        return _fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"engine: error: {message}", file=sys.stderr)
    return code
