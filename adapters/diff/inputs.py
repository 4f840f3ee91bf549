"""The two sides `engine diff` compares, each as the snapshot `engine serve` would scan:
a file, a directory (listed as serve lists it), or a directory as of a git revision."""

import hashlib
import subprocess
from pathlib import Path, PurePosixPath
from typing import Final

from adapters.serve.scan import GraphFile, Snapshot, is_graph_name, scan_once

GIT_TIMEOUT_S: Final = 60


class DiffInputError(Exception):
    """One line for the user: which input, and what to do."""


def graph_file(name: str, path: Path, data: bytes) -> GraphFile:
    digest = hashlib.sha256(data).hexdigest()
    try:
        return GraphFile(name, path, data.decode("utf-8"), digest)
    except UnicodeDecodeError:
        return GraphFile(name, path, "", digest, "the file is not UTF-8 text")


def read_side(path: Path, name: str = "") -> Snapshot:
    """A directory's graph files, or one file (under `name` when given, so that two files
    of different names compare as one graph file)."""
    if path.is_dir():
        snapshot = scan_once(path)
        if snapshot is None:
            raise DiffInputError(f"{path}: the directory vanished while it was read; run the diff again")
        return snapshot
    if not path.exists():
        raise DiffInputError(f"{path}: no such file or directory; give two graph files or two directories")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DiffInputError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    key = name or path.name
    return {key: graph_file(key, path, data)}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=GIT_TIMEOUT_S,
                              check=False)
    except FileNotFoundError as exc:
        raise DiffInputError("--git needs the `git` program, which is not on PATH: install git") from exc


def git_root() -> Path:
    """The top of the repository the command runs in."""
    found = _git(Path.cwd(), "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise DiffInputError(f"{Path.cwd()}: not inside a git repository; run `engine diff --git` in one, "
                             "or compare two directories with `engine diff OLD NEW`")
    return Path(found.stdout.decode().strip())


def relative_in_repo(root: Path, directory: Path) -> PurePosixPath:
    """`directory` as a path inside the repository; DiffInputError when it is outside."""
    resolved = directory.resolve() if directory.is_absolute() else (Path.cwd() / directory).resolve()
    try:
        return PurePosixPath(resolved.relative_to(root.resolve()).as_posix())
    except ValueError:
        raise DiffInputError(f"{directory}: the path is outside the git repository at {root.name}/; "
                             "give a directory inside it") from None


def read_git_side(root: Path, revision: str, inside: PurePosixPath, shown: Path) -> Snapshot:
    """The graph files directly in `inside` as of `revision` (none when the directory did not
    exist then: every graph of the working tree is then `added`)."""
    check = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if check.returncode != 0:
        raise DiffInputError(f"{revision}: no such git revision in {root.name}/; "
                             "give a commit, branch or tag (`git log --oneline` lists them)")
    spec = "" if str(inside) == "." else f"{inside}/"
    listed = _git(root, "ls-tree", "-z", "--name-only", revision, "--", spec or ".")
    if listed.returncode != 0:
        message = listed.stderr.decode(errors="replace").strip().splitlines()
        raise DiffInputError(f"{revision}:{spec}: git cannot list it: {message[-1] if message else 'unknown error'}")
    snapshot: Snapshot = {}
    for entry in sorted(n for n in listed.stdout.decode(errors="replace").split("\0") if n):
        name = PurePosixPath(entry).name
        if not is_graph_name(name):
            continue
        shown_file = _git(root, "show", f"{revision}:{entry}")
        if shown_file.returncode != 0:
            continue  # a submodule or a link: nothing serve would read as a graph
        snapshot[name] = graph_file(name, Path(f"{revision}:{shown / name}"), shown_file.stdout)
    return snapshot
