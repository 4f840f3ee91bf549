"""The raw stage: a parsed file as plain data plus where every key and value came from."""

from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]


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
