"""`engine config show`: the effective engine settings, secrets masked."""

import argparse
import json
import sys
from pathlib import Path

from adapters.cli.exit_codes import EXIT_OK, EXIT_USAGE


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    config = commands.add_parser("config", help="engine settings (engine.toml and HEADRACE_* variables)")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the effective settings, secrets masked")
    show.add_argument("--config", metavar="FILE",
                      help="settings file (default: $HEADRACE_CONFIG, else ./engine.toml if present)")
    show.add_argument("--format", choices=("text", "json"), default="text",
                      help="text (default, key = value lines as in engine.toml) or json (one object)")


def cmd_config(args: argparse.Namespace) -> int:
    """`engine config show`, the only action so far."""
    from adapters.settings import (  # pydantic loads only here
        SettingsError,
        describe,
        load_settings,
    )

    try:
        settings = load_settings(Path(args.config) if args.config else None)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"engine: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    described = describe(settings)
    if args.format == "json":
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
    else:
        sys.stdout.write(render_toml(described))
    return EXIT_OK


def render_toml(described: dict[str, object]) -> str:
    """`key = value` lines that are valid TOML; an unset setting is a comment."""
    lines = []
    for key, value in described.items():
        if value is None:
            lines.append(f"# {key} is not set")
        else:
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
