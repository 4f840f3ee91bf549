"""`engine bundle keygen|sign|verify|sign-file`: signed graph directories (docs/bundles.md).

CI signs the reviewed directory with a private key; `engine serve` with `trusted_keys`
runs only what a trusted key signed; `engine bundle verify` checks the same thing offline.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE


def add_bundle_parser(commands: Any) -> None:
    bundle = commands.add_parser("bundle", help="sign a graph directory, verify a signature, make keys")
    verbs = bundle.add_subparsers(dest="bundle_command", required=True, metavar="VERB")
    keygen = verbs.add_parser("keygen", help="make an Ed25519 key pair: NAME (private, mode 0600) and NAME.pub")
    keygen.add_argument("-o", dest="output", metavar="NAME", required=True, help="the private key's file")
    sign = verbs.add_parser("sign", help="sign every graph file in DIR into DIR/.headrace-signature")
    sign.add_argument("directory", metavar="DIR")
    sign.add_argument("--key", metavar="KEY", required=True, help="the private key (from `engine bundle keygen`)")
    verify = verbs.add_parser("verify", help="check DIR's signature: exit 0 valid, 1 not (with the reason)")
    verify.add_argument("directory", metavar="DIR")
    verify.add_argument("--pubkey", metavar="PUB", action="append", required=True,
                        help="a trusted public key; give it again for more keys (a key rotation)")
    sign_file = verbs.add_parser("sign-file", help="sign one graph file into FILE.sig, for `engine ctl apply "
                                 "--signature`")
    sign_file.add_argument("file", metavar="FILE")
    sign_file.add_argument("--key", metavar="KEY", required=True, help="the private key")


def _error(message: str) -> None:
    print(f"engine: error: {message}", file=sys.stderr)


def cmd_bundle(args: argparse.Namespace) -> int:
    from adapters.trust.keys import TrustError  # cryptography loads only for this command

    try:
        if args.bundle_command == "keygen":
            return _keygen(Path(args.output))
        if args.bundle_command == "sign":
            return _sign(Path(args.directory), Path(args.key))
        if args.bundle_command == "sign-file":
            return _sign_file(Path(args.file), Path(args.key))
        return _verify(Path(args.directory), [Path(p) for p in args.pubkey])
    except TrustError as exc:
        _error(str(exc))
        return EXIT_USAGE


def _keygen(output: Path) -> int:
    from adapters.trust.keys import generate

    public, key_id = generate(output)
    print(f"wrote {output} (private, keep it secret) and {public} (public), key {key_id}")
    return EXIT_OK


def _snapshot(directory: Path) -> Any:
    from adapters.serve.scan import scan_once

    snapshot = scan_once(directory) if directory.is_dir() else None
    if snapshot is None:
        _error(f"{directory} is not a directory (give the directory of graph files)")
    return snapshot


def _sign(directory: Path, key_path: Path) -> int:
    from adapters.atomic_file import replace_file
    from adapters.trust.keys import TrustError, load_private_key
    from adapters.trust.signature import DIRECTORY, SIGNATURE_NAME, sign

    key = load_private_key(key_path)
    snapshot = _snapshot(directory)
    if snapshot is None:
        return EXIT_USAGE
    unreadable = [f"{directory / f.name}: {f.error}" for f in snapshot.values() if f.error]
    if unreadable:
        raise TrustError(f"cannot sign {unreadable[0]}")
    try:
        signed = sign(DIRECTORY, {name: file.text for name, file in snapshot.items()}, key)
    except TrustError as exc:
        _error(str(exc))
        return EXIT_PROBLEMS
    target = directory / SIGNATURE_NAME
    try:
        replace_file(target, signed.to_text().encode("utf-8"))
    except OSError as exc:
        raise TrustError(f"{target}: cannot write the signature: {exc.strerror or exc}") from None
    print(f"signed {len(signed.files)} graph files in {directory} with key {signed.key_id}: {target}")
    return EXIT_OK


def _sign_file(file: Path, key_path: Path) -> int:
    from adapters.atomic_file import replace_file
    from adapters.trust.keys import TrustError, load_private_key
    from adapters.trust.signature import FILE, sign

    key = load_private_key(key_path)
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise TrustError(f"{file}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise TrustError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        signed = sign(FILE, {file.name: text}, key)
    except TrustError as exc:
        _error(str(exc))
        return EXIT_PROBLEMS
    target = file.with_name(file.name + ".sig")
    try:
        replace_file(target, signed.to_text().encode("utf-8"))
    except OSError as exc:
        raise TrustError(f"{target}: cannot write the signature: {exc.strerror or exc}") from None
    print(f"signed {file} with key {signed.key_id}: {target}")
    return EXIT_OK


def _verify(directory: Path, pubkeys: list[Path]) -> int:
    from adapters.trust.keys import load_public_keys
    from adapters.trust.signature import read_seal, verify

    keys = load_public_keys(pubkeys)
    snapshot = _snapshot(directory)
    if snapshot is None:
        return EXIT_USAGE
    verdict = verify(directory, snapshot, read_seal(directory, snapshot), keys)
    if not verdict.ok:
        for problem in verdict.problems:
            _error(f"not valid: {problem}")
        return EXIT_PROBLEMS
    signers = ", ".join(sorted(set(verdict.key_ids))) or "nobody (no graph files)"
    print(f"{directory}: valid: {len(snapshot)} graph files signed by key {signers}")
    return EXIT_OK
