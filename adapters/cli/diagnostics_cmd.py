"""`engine diagnostics collect`: one `.tar.gz` a support engineer can be handed, with what this
machine and a running `engine serve` know about themselves, and no secret (docs/diagnostics.md).

The bundle is written whatever could not be collected: each missing part says why. Exit 0
when it was written (a warning on standard error when the control plane gave nothing), 2
when it could not be (a bad option, an unwritable place).
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.cli.ctl import connection_options
from adapters.cli.ctl_common import ADDRESS_VARIABLE, TOKEN_VARIABLE
from adapters.cli.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from adapters.diagnostics.bundle import Bundle
    from adapters.diagnostics.remote import Remote
    from adapters.settings import Settings

PREFIX = "headrace-diagnostics-"


def _lines(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more: {text!r}")
    return int(text)


def add_diagnostics_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    diagnostics = commands.add_parser("diagnostics", help="collect a support bundle (secrets masked)")
    actions = diagnostics.add_subparsers(dest="diagnostics_command", required=True, metavar="ACTION")
    collect = actions.add_parser(
        "collect", help="write a .tar.gz of versions, devices, settings, state sizes and, from a running "
        "engine serve, graphs, plans, counters, logs and events",
        description="Write a support bundle (docs/diagnostics.md). The control plane is found as `engine ctl` "
        "finds it, else from the settings' control_address and control_token.")
    connection_options(collect)
    collect.add_argument("--config", metavar="FILE",
                         help="settings file (default: $HEADRACE_CONFIG, else ./engine.toml if present)")
    collect.add_argument("-o", "--output", metavar="FILE",
                         help=f"the bundle to write (default: ./{PREFIX}<UTC time>.tar.gz; a directory: that name "
                         "inside it)")
    collect.add_argument("--lines", type=_lines, default=0, metavar="N",
                         help="the newest N log lines the engine kept (default 0: all it kept, up to 1000)")


def _target(output: str | None, stamp: str) -> Path:
    name = f"{PREFIX}{stamp}.tar.gz"
    if output is None:
        return Path(name)
    path = Path(output)
    return path / name if path.is_dir() else path


def _part(make: Callable[[], object]) -> object:
    """One local part of the bundle; a part that fails says why instead of stopping the rest."""
    try:
        return make()
    except Exception as exc:  # a support bundle is most wanted when something is broken
        return {"error": f"{type(exc).__name__}: {exc}"}


def _control_plane_from_settings(args: argparse.Namespace, loaded: "Settings | None") -> None:
    """Where neither the command line nor the environment says, the settings do."""
    if loaded is None:
        return
    if args.address is None and not os.environ.get(ADDRESS_VARIABLE):
        args.address = loaded.control_address
    if args.token is None and TOKEN_VARIABLE not in os.environ and loaded.control_token is not None:
        args.token = loaded.control_token.get_secret_value()


def cmd_diagnostics(args: argparse.Namespace) -> int:
    from adapters.diagnostics import local
    from adapters.diagnostics.bundle import Bundle
    from adapters.settings import SECRET_FIELDS

    created = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    target = _target(args.output, stamp)
    if not target.parent.is_dir() and str(target.parent):
        print(f"engine: error: cannot write {target}: no directory {target.parent}; create it or give another "
              "-o FILE", file=sys.stderr)
        return EXIT_USAGE
    loaded, shown = _settings(Path(args.config) if args.config else None)
    _control_plane_from_settings(args, loaded)
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE, "")
    known = [token]
    if loaded is not None and loaded.control_token is not None:
        known.append(loaded.control_token.get_secret_value())
    bundle = Bundle(f"{PREFIX}{stamp}", tuple(known), created)
    bundle.add_json("version.json", _part(local.version))
    bundle.add_json("devices.json", _part(lambda: local.devices(loaded)))
    bundle.add_json("settings.json", shown)
    bundle.add_json("environment.json", _part(lambda: local.environment(SECRET_FIELDS)))
    bundle.add_json("state.json", _part(lambda: local.state_sizes(loaded)))
    remote = _remote(args)
    _add_remote(bundle, remote)
    bundle.add_text("summary.txt", _summary(bundle, remote, loaded))
    try:
        size = bundle.write(target)
    except OSError as exc:
        print(f"engine: error: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    if not remote.reachable:
        print(f"engine: warning: nothing from the control plane: {remote.error} (the bundle says so)",
              file=sys.stderr)
    elif remote.gaps:
        print(f"engine: warning: {len(remote.gaps)} answers of the control plane are missing "
              "(control/error.txt says which)", file=sys.stderr)
    print(f"wrote {target} ({len(bundle.files) + 1} files, {size} bytes)")
    return EXIT_OK


def _remote(args: argparse.Namespace) -> "Remote":
    if "grpc" not in sys.modules:  # gRPC's own log lines would only repeat the one-line errors
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from adapters.diagnostics.remote import collect

    return collect(args, args.lines)


def _add_remote(bundle: "Bundle", remote: "Remote") -> None:
    from adapters.diagnostics.remote import unreachable_note

    for path, value in remote.files.items():
        if path.endswith(".jsonl"):
            assert isinstance(value, list)
            bundle.add_json_lines(path, value)
        elif isinstance(value, str):
            bundle.add_text(path, value)
        else:
            bundle.add_json(path, value)
    if not remote.reachable or remote.gaps:
        bundle.add_text("control/error.txt", unreachable_note(remote))


def _summary(bundle: "Bundle", remote: "Remote", loaded: "Settings | None") -> str:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bundle.created))
    lines = [f"Headrace diagnostics bundle, collected {created} (docs/diagnostics.md says what is in it",
             "and what is masked; manifest.json lists every file with its SHA-256).", ""]
    if loaded is None:
        lines.append("settings: could not be loaded (settings.json has the problems)")
    if remote.reachable:
        graphs = sum(1 for path in remote.files if path.startswith("control/graphs/"))
        lines.append(f"control plane: {remote.address}: graphs running: {graphs} (control/graphs/)")
    else:
        lines.append(f"control plane: NOTHING COLLECTED from a running engine: {remote.error}")
    lines += [f"missing: {gap}" for gap in remote.gaps]
    lines += ["", "files:"] + [f"  {path}" for path in sorted(bundle.files)]
    return "\n".join(lines)


def _settings(config: Path | None) -> tuple["Settings | None", dict[str, object]]:
    """The effective settings and what the bundle shows of them (secrets masked), or the
    problems that keep them from loading."""
    from adapters.settings import SettingsError, describe, load_settings

    try:
        loaded = load_settings(config)
    except SettingsError as exc:
        return None, {"error": str(exc).splitlines()}
    return loaded, {"settings": describe(loaded)}
