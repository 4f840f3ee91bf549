"""`engine state rotate-key --old FILE|none --new FILE|none [--state-dir DIR]`: re-encrypt the
durable state of a stopped engine (adapters/storage/rotate.py). `--old none` encrypts a state
kept without a key; `--new none` decrypts one."""

import argparse
import sys
from pathlib import Path
from typing import Any

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE

NONE = "none"


def add_rotate_parser(verbs: Any) -> None:
    rotate = verbs.add_parser("rotate-key", help="re-encrypt the state directory with another key (nothing may run)")
    rotate.add_argument("--old", required=True, metavar="FILE", help="key file it is encrypted with, or 'none'")
    rotate.add_argument("--new", required=True, metavar="FILE", help="key file to encrypt it with, or 'none'")
    rotate.add_argument("--state-dir", metavar="DIR", help="the state directory (default: the state_dir setting)")


def _state_dir(given: str | None) -> Path:
    if given is not None:
        return Path(given)
    from adapters.settings import load_settings  # pydantic loads only without --state-dir

    return load_settings().state_dir


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from adapters.settings import SettingsError
    from adapters.storage.crypt import PLAIN, Codec, StateKeyError, codec_for

    if args.old == NONE and args.new == NONE:
        print("engine: error: --old none --new none: nothing to do; give a key file to --old or --new",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        state_dir = _state_dir(args.state_dir)
        old: Codec = PLAIN if args.old == NONE else codec_for(Path(args.old), "--old")
        new: Codec = PLAIN if args.new == NONE else codec_for(Path(args.new), "--new")
    except (SettingsError, StateKeyError) as exc:
        for line in str(exc).splitlines():
            print(f"engine: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    edges_dir = state_dir / "edges"
    if not (edges_dir / "data.mdb").is_file():
        print(f"engine: error: {state_dir} holds no durable state: nothing to re-encrypt (check --state-dir or "
              "the state_dir setting)", file=sys.stderr)
        return EXIT_PROBLEMS
    from adapters.storage.lmdb_store import DurableStorageError
    from adapters.storage.rotate import RotateError, rotate

    try:
        count = rotate(edges_dir, old, new)
    except (RotateError, DurableStorageError) as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    done = "decrypted" if args.new == NONE else "encrypted with " + args.new
    print(f"{state_dir}: {count} stored values {done}")
    return EXIT_OK
