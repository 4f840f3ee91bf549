"""What a migration step reports: the changes it made, and the decisions it leaves to the user."""

from dataclasses import dataclass

Path = tuple[str | int, ...]


def moved(path: Path, source: Path, target: Path) -> Path | None:
    """Where `path` is after the key at `source` moved to `target` (None: removed with it);
    unchanged when it is not under `source`. A change moves a key with everything under it."""
    if path[:len(source)] != source:
        return path
    return target + path[len(source):] if target else None


@dataclass(frozen=True)
class Change:
    from_path: Path
    to_path: Path  # () when the key was removed
    what: str
    why: str

    def describe(self) -> str:
        where = ".".join(str(p) for p in self.from_path)
        return f"{where}: {self.what} ({self.why})"


@dataclass(frozen=True)
class Decision:
    """A change no step can make without knowing what the user meant."""

    path: Path  # where the user wrote it (the old version's path)
    message: str
    # What to remove from the upgraded document to keep the old behaviour exactly, when
    # the file is upgraded in memory to run (a rewrite on disk waits for the user instead).
    keep_behaviour_by_removing: Path = ()
