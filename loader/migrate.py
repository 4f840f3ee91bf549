"""Loading an old file: upgrade its document in memory to the current format, so every later
stage (checks, compiling) sees one format, and problems still point at the lines as written.

The steps in `migrations/` report each change (from-path, to-path); the document's position
tables follow them, so a problem found after the upgrade names the line the user wrote.
"""

from loader.document import Document, KeyPath
from loader.problems import WARNING, Problem, format_path
from migrations import CURRENT_VERSION, upgrade
from migrations.change import moved


def _remap(doc: Document, source: KeyPath, target: KeyPath) -> None:
    for table in (doc.keys, doc.values):
        relocated = {}
        for path in list(table):
            new = moved(path, source, target)
            if new != path:
                pos = table.pop(path)
                if new is not None:
                    relocated[new] = pos
        table.update(relocated)
    for marks in (doc.quoted, doc.unresolved):
        for path in list(marks):
            new = moved(path, source, target)
            if new != path:
                marks.discard(path)
                if new is not None:
                    marks.add(new)
    for path in list(doc.interpolated):
        new = moved(path, source, target)
        if new != path:
            names = doc.interpolated.pop(path)
            if new is not None:
                doc.interpolated[new] = names


def upgrade_document(doc: Document) -> tuple[list[Problem], list[tuple[KeyPath, KeyPath]]]:
    """Upgrade `doc` in place. Returns warnings for the decisions the user still has to make
    (the file keeps its old behaviour meanwhile), and the (from, to) moves made, so problems
    found later can name paths as written."""
    if not isinstance(doc.data, dict):
        return [], []
    changes, decisions = upgrade(doc.data, CURRENT_VERSION)
    problems = []
    for decision in decisions:
        pos = doc.locate(decision.path, at_key=True)
        problems.append(Problem("HR080", WARNING, doc.file, pos.line, pos.column, format_path(decision.path),
                                decision.message, "change the file as you decide, then run `engine migrate` on it "
                                "(until then it runs as before)"))
        _remove(doc.data, decision.keep_behaviour_by_removing)
    moves = [(c.from_path, c.to_path) for c in changes if c.from_path != c.to_path]
    for source, target in moves:
        _remap(doc, source, target)
    return problems, moves


def _remove(data: object, path: KeyPath) -> None:
    for part in path[:-1]:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return
    if path and isinstance(data, dict):
        data.pop(path[-1], None)


def as_written(path: str, moves: list[tuple[KeyPath, KeyPath]]) -> str:
    """A problem's key path (after the upgrade) as the user wrote it."""
    for source, target in reversed(moves):
        if not target:
            continue
        new, old = format_path(target), format_path(source)
        if path == new or path.startswith(new + "."):
            path = old + path[len(new):]
    return path
