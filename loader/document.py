"""The raw stage: a parsed file as plain data plus where every key and value came from."""

import math
from dataclasses import dataclass, field
from typing import Final

KeyPath = tuple[str | int, ...]

# How deeply values may nest in a graph file. Real graphs need under ten levels; the limit
# keeps every later stage (interpolation, schema checks, migrations) far from Python's
# recursion limit, so a deep file is one located problem, never a crash.
MAX_DEPTH: Final = 64
# Integers have at most about this many digits: every number in a graph file must also be
# one as a float (a float parameter, a comparison with a schema bound), and no setting needs
# more. Far beyond, Python even refuses to write an integer as text.
MAX_INT_DIGITS: Final = 300
MAX_INT_BITS: Final = math.ceil(MAX_INT_DIGITS * math.log2(10))
TOO_LONG_NUMBER: Final = f"the number is too large to load (more than {MAX_INT_DIGITS:,} digits)"


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    file: str
    format: str  # "yaml" or "toml"
    text: str
    data: object = None
    keys: dict[KeyPath, Pos] = field(default_factory=dict)
    values: dict[KeyPath, Pos] = field(default_factory=dict)
    # Scalars written in quotes; an exact `${VAR}` in quotes stays a string (YAML only).
    quoted: set[KeyPath] = field(default_factory=set)
    # Values that came from `${VAR}` interpolation: path -> the variable names.
    interpolated: dict[KeyPath, tuple[str, ...]] = field(default_factory=dict)
    # Values taken from a secret variable (`${secret:VAR}`, or one `secret_env` lists): path ->
    # the variables' texts, never to be shown.
    secrets: dict[KeyPath, tuple[str, ...]] = field(default_factory=dict)
    # Values whose interpolation failed: already reported, so later checks skip them.
    unresolved: set[KeyPath] = field(default_factory=set)

    def locate(self, path: KeyPath, at_key: bool = False) -> Pos:
        """Where `path` is written, falling back to its nearest located ancestor."""
        table = (self.keys, self.values) if at_key else (self.values, self.keys)
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            for positions in table:
                pos = positions.get(prefix)
                if pos is not None:
                    return pos
        return Pos(1, 1)

    def source_line(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""
