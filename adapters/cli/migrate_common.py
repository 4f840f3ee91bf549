"""What the YAML and TOML rewriters of `engine migrate` share: their result, and where each
key of the original document ended up after a migration's changes."""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from migrations.change import Change, Decision, Path, moved


@dataclass
class Rewritten:
    """The file's new text (the old one when there are decisions: nothing is half-migrated)."""

    text: str
    changes: list[Change]
    decisions: list[Decision]


class RewriteError(Exception):
    """The file cannot be rewritten keeping what it says and how it says it; the message says why."""


def follow(paths: Iterable[Path], changes: list[Change]) -> dict[Path, Path | None]:
    """Where each of `paths` is after `changes`, in order (None: removed). A change moves a key
    with everything under it."""
    where: dict[Path, Path | None] = {path: path for path in paths}
    for change in changes:
        source, target = change.from_path, change.to_path
        if source == target:
            continue
        for path, now in where.items():
            if now is not None:
                where[path] = moved(now, source, target)
    return where


def carried(path: Path, final: Path | None, where: dict[Path, Path | None]) -> bool:
    """Whether the key at `path` only went along with its map (which a change moved or
    removed), rather than being moved, renamed or removed itself."""
    owner = where.get(path[:-1], path[:-1])
    return (owner is None and final is None) or (owner is not None and final == owner + path[-1:])


def comment_lines(text: str) -> list[str]:
    """The comment lines in a comment's text, stripped: `# eight\\n   # the policy\\n\\n` ->
    ['# eight', '# the policy']."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


_QUOTED: Final = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'')
_COMMENT: Final = re.compile(r"(?:^|\s)(#.*)$")


def text_comments(text: str) -> Counter[str]:
    """The comments in YAML text, line by line, as comment_lines gives them (a `#` inside a
    quoted string is not one; a block scalar's `#` lines count on both sides alike)."""
    found: Counter[str] = Counter()
    for line in text.splitlines():
        match = _COMMENT.search(_QUOTED.sub(lambda m: "_" * len(m.group(0)), line))
        if match:
            found[line[match.start(1):].strip()] += 1
    return found
