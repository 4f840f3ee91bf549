"""Rewriting a TOML graph file in a newer format, keeping what people wrote around the changes.

tomlkit parses TOML into tables that remember comments, blank lines, key order and the way
each value is written, and writes back exactly what it read where nothing changed. (tomli-w,
which `engine` uses elsewhere, cannot do this: it writes plain dicts, so every comment and
all formatting would be lost.) The migration step changes tomlkit's tables in place; what
tomlkit does not do by itself is done here:

- An inline table a step changed (`from = { node = "a", capacity = 8 }`) is written again in
  the file's style, `{ node = "a", edge = { capacity = 8 } }`, with its keys in the order they
  were written (tomlkit would leave stray spaces where keys were removed and append new ones).
- A renamed key (`storage = "lmdb"  # on disk` -> `durable = true  # on disk`) stays where
  the old one was and keeps its comment (tomlkit would append it after the comment lines that
  introduce the next table); a rewritten string keeps its quotes ('literal' or "basic").
- Keys of a `[[nodes.x.from]]` or `[nodes.x.from]` table move into a new `[....edge]` table
  with the comment lines right above them, and the new table is followed by a blank line
  when the table it came from was.
"""

from dataclasses import dataclass
from typing import Any, Final

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Null, String, Table, Whitespace

from adapters.cli.migrate_common import RewriteError, Rewritten, carried, comment_lines, follow
from migrations import upgrade
from migrations.change import Change, Path

_MISSING: Final = object()
_LAST: Final = 1 << 30


def _body(node: Any) -> Container | None:
    if isinstance(node, Container):
        return node
    if isinstance(node, (Table, InlineTable)):
        return node.value
    return None


def _child(node: Any, part: str | int) -> Any:
    """The item (with its comment and style, not a plain value) at `part` of `node`."""
    body = _body(node)
    if body is not None and isinstance(part, str) and part in body:
        return body.item(part)
    if isinstance(node, (AoT, Array)) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _resolve(document: Any, path: Path) -> Any:
    node = document
    for part in path:
        node = _child(node, part)
        if node is _MISSING:
            break
    return node


@dataclass
class _Snapshot:
    items: dict[Path, Any]  # every item by path
    orders: dict[Path, list[str]]  # the keys of every table, in written order
    # The style of every inline table: the padding inside its braces and around its `=`.
    pads: dict[Path, tuple[str, str]]
    # The comment lines right above a key in a [table] (no blank line between).
    attached: dict[Path, list[Comment]]


def _snapshot(document: Any) -> _Snapshot:
    items: dict[Path, Any] = {}
    orders: dict[Path, list[str]] = {}
    pads: dict[Path, tuple[str, str]] = {}

    def walk(node: Any, path: Path) -> None:
        body = _body(node)
        if isinstance(node, Table):
            run: list[Comment] = []
            for key, item in body.body:  # type: ignore[union-attr]
                if key is None:
                    run = run + [item] if isinstance(item, Comment) else []
                elif run:
                    attached[path + (key.key,)], run = run, []
        if isinstance(node, InlineTable) and len(node):
            first = next(key for key, _ in node.value.body if key is not None)
            spelled = first.as_string()
            pads[path] = (" " if node.as_string().startswith("{ ") else "",
                          spelled[len(spelled.rstrip()):] + first.sep)
        if body is not None:
            orders[path] = list(body.keys())
            for key in orders[path]:
                child = body.item(key)
                items[path + (key,)] = child
                walk(child, path + (key,))
        elif isinstance(node, (AoT, Array)):
            for i, element in enumerate(node):
                items[path + (i,)] = element
                walk(element, path + (i,))

    attached: dict[Path, list[Comment]] = {}
    walk(document, ())
    return _Snapshot(items, orders, pads, attached)


def _keep_comments_and_quotes(document: Any, items: dict[Path, Any], where: dict[Path, Path | None]) -> None:
    for path, old in items.items():
        final = where[path]
        if final is None or not isinstance(old, Item) or (final != path and carried(path, final, where)):
            continue  # removed, or went along with its table
        new = _resolve(document, final)
        if not isinstance(new, Item) or new is old:
            continue
        if old.trivia.comment and not new.trivia.comment and not isinstance(new, (Table, AoT)):
            new.trivia.comment_ws, new.trivia.comment = old.trivia.comment_ws, old.trivia.comment
        if isinstance(old, String) and isinstance(new, String) and new.type != old.type:
            literal = old.type.value == "'" and "'" not in str(new) and "\n" not in str(new)
            replacement = tomlkit.string(str(new), literal=literal)
            replacement.trivia.comment_ws, replacement.trivia.comment = new.trivia.comment_ws, new.trivia.comment
            _set(document, final, replacement)


def _set(document: Any, path: Path, value: Any) -> None:
    _resolve(document, path[:-1])[path[-1]] = value


def _render_inline(table: InlineTable, keys: list[str], style: tuple[str, str]) -> InlineTable:
    pad, equals = style
    body = table.value
    named = {key.key: key for key, _ in body.body if key is not None}
    parts = [f"{named[k].as_string().strip()}{equals}{_child(table, k).as_string().strip()}" for k in keys]
    made = tomlkit.parse("x = {" + pad + ", ".join(parts) + pad + "}").item("x")
    assert isinstance(made, InlineTable)
    return made


def _rewrite_inline_tables(document: Any, orders: dict[Path, list[str]], pads: dict[Path, tuple[str, str]],
                           where: dict[Path, Path | None], changes: list[Change]) -> None:
    """Write every inline table a change touched again, in the file's style and key order."""
    origin = {final: path for path, final in where.items() if final is not None}

    def written_at(path: Path) -> int:
        """Where the key at `path` (an original path) was written in its table."""
        keys = orders.get(path[:-1], [])
        return keys.index(path[-1]) if path and path[-1] in keys else _LAST

    def rank(table: Path, key: str) -> int:
        first = origin.get(table + (key,))
        if first is not None:
            return written_at(first)
        # A new key (`edge`) goes where the first key moved into it was written.
        inside = table + (key,)
        return min((written_at(p) for f, p in origin.items() if f[:len(inside)] == inside), default=_LAST)

    touched: set[Path] = set()
    for change in changes:
        for path in (change.from_path, change.to_path):
            touched.update(path[:end] for end in range(len(path)))
    styles = list(pads.values())
    usual = max(styles, key=styles.count) if styles else (" ", " = ")
    for path in sorted(touched, key=len, reverse=True):  # inner tables first
        table = _resolve(document, path)
        if isinstance(table, InlineTable) and len(table):
            keys = sorted(table.value.keys(), key=lambda k: rank(path, k))
            # A new table (`edge = { ... }`) is written like the one it is in.
            style = pads.get(origin.get(path, path)) or pads.get(origin.get(path[:-1], path[:-1])) or usual
            _set(document, path, _render_inline(table, keys, style))


def _restore_positions(document: Any, orders: dict[Path, list[str]], where: dict[Path, Path | None]) -> None:
    """A renamed key of a [table] goes back where the old one was: tomlkit appends it at the
    end of the table, after any comment lines that introduce the next table."""
    for path, final in where.items():
        if final is None or final == path or len(path) < 1 or final[:-1] != where.get(path[:-1], path[:-1]):
            continue  # removed, unchanged, or not a rename within its table
        table = _resolve(document, final[:-1])
        if not isinstance(table, Table):
            continue
        body = table.value
        written = orders.get(path[:-1], [])
        index = written.index(path[-1]) if path[-1] in written else -1
        later = [where.get(path[:-1] + (k,)) for k in written[index + 1:]]
        earlier = [where.get(path[:-1] + (k,)) for k in written[:index]]
        name = str(final[-1])
        item = body.item(name)
        body.remove(name)
        keys = [key.key if key is not None else None for key, _ in body.body]
        after = next((keys.index(f[-1]) for f in later if f is not None and f[-1] in keys), None)
        before = next((keys.index(f[-1]) + 1 for f in reversed(earlier) if f is not None and f[-1] in keys), None)
        position = after if after is not None else before
        if position is not None and position < len(body.body):
            body._insert_at(position, name, item)  # tomlkit has no public insert
        else:
            body.append(name, item)


def _move_attached_comments(document: Any, attached: dict[Path, list[Comment]],
                            where: dict[Path, Path | None]) -> None:
    """Comment lines right above a key that moved into another table go with it; blank lines
    left back to back where keys were are made one."""
    emptied: list[Table] = []
    for path, comments in attached.items():
        final = where.get(path)
        if final is None or final[:-1] == where.get(path[:-1], path[:-1]):
            continue  # removed, in place, or renamed in place (its position is kept)
        item, owner = _resolve(document, final), _resolve(document, path[:-1])
        if not isinstance(item, Item) or not isinstance(owner, Table):
            continue
        body = owner.value.body
        texts = []
        for comment in comments:
            index = next((i for i, (_, it) in enumerate(body) if it is comment), None)
            if index is not None:
                body[index] = (None, Null())  # how tomlkit itself blanks a removed entry
                texts.append(comment.as_string())
        item.trivia.indent = "".join(texts) + item.trivia.indent
        emptied.append(owner)
    for owner in emptied:
        body = owner.value.body
        previous: Any = None
        for i, (key, it) in enumerate(body):
            if isinstance(it, Null):
                continue
            if key is None and isinstance(it, Whitespace) and isinstance(previous, Whitespace):
                body[i] = (None, Null())
                continue
            previous = it


def _ends_with_blank_line(table: Table) -> bool:
    body = table.value.body
    if not body:
        return False
    last = body[-1][1]
    if isinstance(last, Whitespace):
        return "\n" in last.s
    return isinstance(last, Table) and _ends_with_blank_line(last)


def _space_new_tables(document: Any, where: dict[Path, Path | None], changes: list[Change]) -> None:
    """A new sub-table takes over the blank line that separated its parent from what follows."""
    existing = {final for final in where.values() if final is not None}
    for path in {change.to_path[:-1] for change in changes if change.to_path} - existing:
        table, parent = _resolve(document, path), _resolve(document, path[:-1])
        if not isinstance(table, Table) or not isinstance(parent, Table) or _ends_with_blank_line(table):
            continue
        body = parent.value.body
        index = next((i for i, (key, item) in enumerate(body) if item is table), None)
        before = body[index - 1][1] if index else None
        if isinstance(before, Whitespace) and "\n" in before.s:
            table.value.append(None, Whitespace("\n"))


def toml_comments(text: str) -> list[str]:
    """The comments in TOML text (a `#` outside strings to the end of its line), stripped."""
    found: list[str] = []
    i, end = 0, len(text)
    while i < end:
        quote = next((q for q in ('"""', "'''", '"', "'") if text.startswith(q, i)), "")
        if quote:
            i += len(quote)
            while i < end and not text.startswith(quote, i) and not (len(quote) == 1 and text[i] == "\n"):
                i += 2 if quote[0] == '"' and text[i] == "\\" else 1
            i += len(quote)
            while len(quote) == 3 and i < end and text[i] == quote[0]:  # `""""` ends with a quote in the string
                i += 1
        elif text[i] == "#":
            line_end = text.find("\n", i)
            line_end = end if line_end < 0 else line_end
            found += comment_lines(text[i:line_end])
            i = line_end
        else:
            i += 1
    return found


def rewrite_toml(text: str, to: int) -> Rewritten:
    """`text` migrated to version `to`, or unchanged with the decisions."""
    document = tomlkit.parse(text)
    snapshot = _snapshot(document)
    items = snapshot.items
    try:
        changes, decisions = upgrade(document, to)
    except Exception as exc:  # tomlkit refuses some layouts (dotted keys across tables); said, not hidden
        raise RewriteError(f"tomlkit cannot change this layout ({type(exc).__name__}: {exc}); "
                           "write the `from` tables without dotted keys, or make the changes by hand") from exc
    if decisions:
        return Rewritten(text, changes, decisions)
    where = follow(items, changes)
    _keep_comments_and_quotes(document, items, where)
    _restore_positions(document, snapshot.orders, where)
    _move_attached_comments(document, snapshot.attached, where)
    _rewrite_inline_tables(document, snapshot.orders, snapshot.pads, where, changes)
    _space_new_tables(document, where, changes)
    written = tomlkit.dumps(document)
    dropped = [line for path, final in where.items() if final is None and isinstance(items[path], Item)
               for line in comment_lines(items[path].trivia.comment)]
    lost = sorted(set(toml_comments(text)) - set(toml_comments(written)) - set(dropped))
    if lost:
        raise RewriteError(f"the comment {lost[0]!r} would be lost")
    return Rewritten(written, changes, decisions)
