"""Rewriting a YAML graph file in a newer format, keeping what people wrote around the changes.

ruamel.yaml's round trip (`YAML(typ="rt")`) loads the file into maps that remember key order,
quotes, flow or block style and comments; the migration step changes those maps in place and
the file is written back. What the round trip does not do by itself is done here:

- Indentation: ruamel.yaml writes one mapping and one sequence indentation for the whole
  file. The one that writes the unchanged document back most exactly is chosen (for files
  written in one consistent style: byte for byte), so only the migrated lines change.
- Comments follow their keys. ruamel.yaml keeps the rest of a key's line and the comment
  lines after it with the key, in the map that holds it; when a step moves a key into
  `edge:`, renames or removes it, its comment goes along, and comment lines that were about
  the *next* key stay in front of that key.
- Quotes: a value a step rewrites (`policy: "latest"`) keeps the quotes it was written with.
"""

import difflib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.tokens import CommentToken

from adapters.cli.migrate_common import RewriteError, Rewritten, carried, comment_lines, follow, text_comments
from migrations import upgrade
from migrations.change import Path


def _indents() -> tuple[tuple[int, int, int], ...]:
    """(mapping indent, sequence indent, dash offset) to try, the likeliest first: the shipped
    graphs' style (`key:` / `  - item`) wins a tie."""
    found = [(2, 4, 2), (2, 2, 0)]
    for mapping in (2, 4, 3):
        for offset in sorted({0, 2, mapping}):
            for sequence in sorted({offset + 2, max(mapping, offset + 2), offset + mapping}):
                if (mapping, sequence, offset) not in found:
                    found.append((mapping, sequence, offset))
    return tuple(found)


_INDENTS: Final = _indents()
# Comment lines before `---` or a directive, which ruamel.yaml does not keep.
_PREFIX: Final = re.compile(r"((?:[ \t]*(?:#[^\n]*)?\n)*)(?=---(?:[ \t\n]|$)|%)")
_EOL_SLOT: Final = 2  # in a map's comment entry; a sequence's is at 0
# ruamel.yaml's round trip breaks a few layouts of comments between list items when it
# writes them back (seen: `- node: "a" -`); the file is then left as it was.
UNWRITABLE: Final = ("ruamel.yaml cannot write this file back intact (the comments between the items of a "
                     "list are laid out in a way it breaks); the file is unchanged: move those comments, or "
                     "make the changes by hand (docs/migrations.md lists them)")


@dataclass(frozen=True)
class _Layout:
    mapping: int
    sequence: int
    offset: int
    prefix: str
    explicit_start: bool
    explicit_end: bool


@dataclass
class _Key:
    """A key of the original document and the comment that goes with it."""

    owner: CommentedMap
    key: Any
    column: int  # 0-based
    entry: list[Any] | None  # owner.ca.items[key] as loaded
    tail: tuple[Any, Any, int]  # the slot holding the last comment under the key
    following: Path | None  # the next key in the same map


_MISSING: Final = object()
Slot = tuple[Any, Any, int]


def _yaml(layout: _Layout | None = None) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 30  # never fold a long line
    if layout is not None:
        yaml.indent(mapping=layout.mapping, sequence=layout.sequence, offset=layout.offset)
        yaml.explicit_start = layout.explicit_start
        yaml.explicit_end = layout.explicit_end
    return yaml


def _dump(document: Any, layout: _Layout) -> str:
    out = io.StringIO()
    _yaml(layout).dump(document, out)
    return layout.prefix + out.getvalue()


def _choose_layout(text: str, document: Any) -> _Layout:
    """The indentation that writes the unchanged document back closest to `text`."""
    match = _PREFIX.match(text)
    prefix = match.group(1) if match else ""
    explicit_end = any(line.rstrip() == "..." for line in text.splitlines())
    best: tuple[float, _Layout] | None = None
    for mapping, sequence, offset in _INDENTS:
        layout = _Layout(mapping, sequence, offset, prefix, match is not None, explicit_end)
        written = _dump(document, layout)
        if written == text:
            return layout
        score = difflib.SequenceMatcher(None, text.splitlines(), written.splitlines(), autojunk=False).ratio()
        if best is None or score > best[0]:
            best = (score, layout)
    assert best is not None
    return best[1]


def _tail(container: Any, key: Any) -> Slot:
    """The slot of the last comment under `key`: its own, or its block value's last item's."""
    value = container[key]
    if isinstance(value, CommentedMap) and len(value) and not value.fa.flow_style():
        return _tail(value, list(value)[-1])
    if isinstance(value, CommentedSeq) and len(value) and not value.fa.flow_style():
        return _tail(value, len(value) - 1)
    return container, key, _EOL_SLOT if isinstance(container, CommentedMap) else 0


def _snapshot(document: Any) -> dict[Path, _Key]:
    keys: dict[Path, _Key] = {}
    seen: set[int] = set()

    def walk(node: Any, path: Path) -> None:
        if id(node) in seen:  # an alias: already walked where the anchor is
            return
        if isinstance(node, CommentedMap):
            seen.add(id(node))
            names = list(node)
            for i, name in enumerate(names):
                child = path + (name if isinstance(name, (str, int)) else str(name),)
                position = node.lc.data.get(name) if isinstance(node.lc.data, dict) else None
                following = path + (names[i + 1],) if i + 1 < len(names) else None
                keys[child] = _Key(node, name, position[1] if position else 0, node.ca.items.get(name),
                                   _tail(node, name), following)
                walk(node[name], child)
        elif isinstance(node, CommentedSeq):
            seen.add(id(node))
            for i, item in enumerate(node):
                walk(item, path + (i,))

    walk(document, ())
    return keys


def _resolve(document: Any, path: Path) -> Any:
    node = document
    for part in path:
        if not _holds(node, part):
            return _MISSING
        node = node[part]
    return node


def _holds(node: Any, part: str | int) -> bool:
    """Whether `node[part]` is a key of a mapping or an index of a sequence."""
    if isinstance(node, CommentedMap):
        return part in node
    return isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node)


def _tokens(node: Any) -> Iterator[tuple[list[Any], int]]:
    """Every comment token in `node`'s comment attributes and below, as (list, index)."""
    def in_list(items: list[Any]) -> Iterator[tuple[list[Any], int]]:
        for i, item in enumerate(items):
            if isinstance(item, CommentToken):
                yield items, i
            elif isinstance(item, list):
                yield from in_list(item)

    seen: set[int] = set()

    def walk(value: Any) -> Iterator[tuple[list[Any], int]]:
        if not isinstance(value, (CommentedMap, CommentedSeq)) or id(value) in seen:
            return
        seen.add(id(value))
        ca = value.ca
        for part in (ca.comment, ca.end, getattr(ca, "pre", None)):
            if isinstance(part, list):
                yield from in_list(part)
        for entry in ca.items.values():
            if isinstance(entry, list):
                yield from in_list(entry)
        for child in (value.values() if isinstance(value, CommentedMap) else value):
            yield from walk(child)

    yield from walk(node)


def _shift_text(text: str, shift: int, from_column: int) -> str:
    """Indent by `shift` the comment lines (after the first) at `from_column` or deeper."""
    if not shift:
        return text
    lines = text.split("\n")
    for i in range(1, len(lines)):
        line = lines[i]
        indent = len(line) - len(line.lstrip(" "))
        if line.strip().startswith("#") and indent >= from_column:
            lines[i] = " " * max(indent + shift, 0) + line.lstrip(" ")
    return "\n".join(lines)


def _shifted(token: CommentToken, shift: int, from_column: int) -> CommentToken:
    column = token.column + shift if token.column >= from_column else token.column
    return CommentToken(_shift_text(token.value, shift, from_column), CommentMark(max(column, 0)))


def _slot_token(slot: Slot) -> CommentToken | None:
    container, key, index = slot
    entry = container.ca.items.get(key)
    token = entry[index] if isinstance(entry, list) and len(entry) > index else None
    return token if isinstance(token, CommentToken) else None


def _set_slot_token(slot: Slot, token: CommentToken | None) -> None:
    container, key, index = slot
    entry = container.ca.items.get(key)
    if not isinstance(entry, list):
        if token is None:
            return
        entry = container.ca.items[key] = [None, None, None, None]
    while len(entry) <= index:
        entry.append(None)
    entry[index] = token


def _append(slot: Slot, text: str) -> None:
    """Add comment lines after whatever the slot's line ends with."""
    token = _slot_token(slot)
    if token is None:
        _set_slot_token(slot, CommentToken("\n" + text, CommentMark(0)))
        return
    value = token.value if token.value.endswith("\n") else token.value + "\n"
    _set_slot_token(slot, CommentToken(value + text, token.start_mark))


def _slot_before(document: Any, path: Path) -> Slot | None:
    """The slot whose comment lines are written right before the key at `path`."""
    parent = _resolve(document, path[:-1])
    if not isinstance(parent, CommentedMap) or path[-1] not in parent:
        return None
    names = list(parent)
    i = names.index(path[-1])
    if i > 0:
        return _tail(parent, names[i - 1])
    holder = _resolve(document, path[:-2]) if len(path) >= 2 else _MISSING
    if isinstance(holder, (CommentedMap, CommentedSeq)):
        return holder, path[-2], _EOL_SLOT if isinstance(holder, CommentedMap) else 0
    return None


def _slot_after(document: Any, where: dict[Path, Path | None], owner_path: Path) -> Slot | None:
    """The slot whose comment lines are written right after the map at `owner_path`."""
    final = where.get(owner_path, owner_path)
    if final is None:
        return None
    owner = _resolve(document, final)
    if isinstance(owner, CommentedMap) and len(owner) and not owner.fa.flow_style():
        return _tail(owner, list(owner)[-1])
    holder = _resolve(document, final[:-1]) if final else _MISSING
    if isinstance(holder, (CommentedMap, CommentedSeq)):
        return _tail(holder, final[-1])
    return None


def _carry_comments(document: Any, keys: dict[Path, _Key], where: dict[Path, Path | None],
                    indent: int) -> list[str]:
    """Move the comments of moved, renamed and removed keys; returns the comment lines that
    went with a removed key."""
    # Keys a change moved, renamed or removed; not those that only went along with their map.
    moved = [path for path, final in where.items() if final != path and not carried(path, final, where)]
    dropped: list[str] = []
    # The comment lines after a moved key are about the key that followed it: they stay in
    # front of that key (or at the end of the map), wherever the moved key goes.
    relocations: list[tuple[str, _Key, Path]] = []
    for path in moved:
        info = keys[path]
        tail = _slot_token(info.tail)
        if tail is not None:
            line, _, rest = tail.value.partition("\n")
            if rest:
                relocations.append((rest, info, path))
            _set_slot_token(info.tail, CommentToken(line + "\n", tail.start_mark) if line.strip() else None)
        entry = info.owner.ca.items.pop(info.key, None)
        target = where[path]
        if target is None:
            if isinstance(entry, list):
                dropped += [text for item in entry if isinstance(item, CommentToken)
                            for text in comment_lines(item.value)]
            continue
        shift = (len(target) - len(path)) * indent
        holder = _resolve(document, target[:-1])
        if isinstance(entry, list) and isinstance(holder, CommentedMap):
            holder.ca.items[target[-1]] = [_shifted(t, shift, info.column) if isinstance(t, CommentToken) else t
                                           for t in entry]
        if shift:
            for items, i in _tokens(_resolve(document, target)):
                items[i] = _shifted(items[i], shift, info.column)
    for rest, info, path in relocations:
        following = info.following
        while following is not None and where.get(following) is None:
            following = keys[following].following
        if following is None:
            slot, shift = _slot_after(document, where, path[:-1]), 0
        else:
            final = where[following]
            assert final is not None
            slot, shift = _slot_before(document, final), (len(final) - len(following)) * indent
        if slot is not None:
            _append(slot, _shift_text("\n" + rest, shift, info.column)[1:])
    return dropped


def _keep_quotes(document: Any, values: dict[Path, Any], where: dict[Path, Path | None]) -> None:
    """A string a step rewrote keeps the quotes of the one it replaced."""
    for path, old in values.items():
        final = where[path]
        if not isinstance(old, ScalarString) or not final:
            continue
        holder = _resolve(document, final[:-1])
        key = final[-1]
        if isinstance(holder, CommentedMap) and key in holder and type(holder[key]) is str:
            holder[key] = type(old)(holder[key])


def _keep_anchors(document: Any) -> None:
    """ruamel.yaml writes an anchor only where an alias uses it; keep every one written."""
    seen: set[int] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found = node.yaml_anchor() if callable(getattr(node, "yaml_anchor", None)) else None
        if found is not None and found.value:
            node.yaml_set_anchor(found.value, always_dump=True)
        if isinstance(node, CommentedMap):
            stack.extend(node.values())
        elif isinstance(node, CommentedSeq):
            stack.extend(node)


def _writes_back(text: str, layout: _Layout) -> bool:
    """Whether ruamel.yaml writes the document unchanged back as YAML of the same values."""
    document = _yaml().load(text)
    try:
        return bool(_yaml().load(_dump(document, layout)) == document)
    except YAMLError:
        return False


def rewrite_yaml(text: str, to: int) -> Rewritten:
    """`text` (one YAML document) migrated to version `to`, or unchanged with the decisions."""
    try:
        document = _yaml().load(text)
    except YAMLError as exc:  # the loader's reader accepted it; ruamel.yaml's round trip may not
        raise RewriteError(f"ruamel.yaml cannot round-trip it: {str(exc).splitlines()[0]}") from exc
    if not isinstance(document, CommentedMap):
        raise RewriteError("the top level is not a mapping")
    _keep_anchors(document)
    layout = _choose_layout(text, document)
    keys = _snapshot(document)
    values = {path: info.owner[info.key] for path, info in keys.items()}
    changes, decisions = upgrade(document, to)
    if decisions:
        return Rewritten(text, changes, decisions)
    where = follow(keys, changes)
    _keep_quotes(document, values, where)
    dropped = _carry_comments(document, keys, where, layout.mapping)
    written = _dump(document, layout)
    try:
        reread = _yaml().load(written)
    except YAMLError as exc:  # ruamel.yaml wrote something it cannot read: never save that
        raise RewriteError(UNWRITABLE) from exc
    if reread != document and not _writes_back(text, layout):
        raise RewriteError(UNWRITABLE)  # it changes values even where nothing was migrated
    # Compared in the text, not in ruamel.yaml's tree: it does not even load a few comments
    # (one on its own line after a flow `{...}` list item), and a count catches a duplicate.
    dropped_lines = {line for text_ in dropped for line in comment_lines(text_)}
    lost = sorted(set(text_comments(text) - text_comments(written)) - dropped_lines)
    if lost:
        raise RewriteError(f"the comment {lost[0]!r} would be lost; the file is unchanged: move the comment "
                           "onto a line of its own before a key, or make the changes by hand")
    return Rewritten(written, changes, decisions)
