"""YAML -> Document, keeping the line and column of every key and value.

ruamel.yaml (YAML 1.2) composes the node tree (marks, styles, resolved tags); we build the plain
data from it ourselves so that every duplicate key is reported (not just the first),
aliases cannot blow up memory, and no YAML type leaks past the loader.

Aliases share one composed node, so a document's expanded size is counted per node before
anything is built: an alias bomb (billion laughs) or an alias inside its own anchor is refused
at the cost of its written size, pointing at the value that expands.
"""

from typing import Final

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loader.document import MAX_DEPTH, MAX_INT_BITS, MAX_INT_DIGITS, TOO_LONG_NUMBER, Document, KeyPath, Pos
from loader.problems import ERROR, Problem, format_path

MAX_NODES: Final = 200_000
_TAG: Final = "tag:yaml.org,2002:"
# Text with more `[` and `{` than this is first scanned for its depth: the parser's time grows
# with the square of the nesting of flow collections (20,000 levels take a second).
_FLOW_BRACKETS: Final = 1000


def _yaml() -> YAML:
    # The C parser (ruamel.yaml.clib) keeps marks and styles and is ~10x faster than the
    # pure one; ruamel falls back to pure Python where the extension is missing.
    return YAML(typ="safe", pure=False)


_RESOLVER_YAML: Final = _yaml()


def scalar_value(tag: str, text: str) -> object:
    """The Python value YAML 1.2 gives a plain scalar with the resolved `tag`; an integer
    too large to use stays text (`_Builder` refuses it, interpolation leaves it to the schema)."""
    kind = tag[len(_TAG):] if tag.startswith(_TAG) else "str"
    try:
        if kind == "null":
            return None
        if kind == "bool":
            return text.lower() == "true"
        if kind == "int":
            digits = text.replace("_", "")
            if len(digits) > 4 * MAX_INT_DIGITS:  # surely too large, and not worth reading
                return text
            try:
                number = int(digits, 0)
            except ValueError:
                number = int(digits, 10)
            return number if number.bit_length() <= MAX_INT_BITS else text
        if kind == "float":
            lowered = text.replace("_", "").lower()
            if lowered.endswith(".inf"):
                return float("-inf") if lowered.startswith("-") else float("inf")
            if lowered.endswith(".nan"):
                return float("nan")
            return float(lowered)
    except ValueError:
        return text
    return text


def resolve_plain(text: str) -> object:
    """The value YAML would give `text` written as a plain scalar (for `${VAR}` values)."""
    tag = _RESOLVER_YAML.resolver.resolve(ScalarNode, text, (True, False))
    return scalar_value(str(tag), text)


class _Builder:
    def __init__(self, doc: Document, problems: list[Problem]) -> None:
        self.doc = doc
        self.problems = problems
        self.count = 0

    def pos(self, node: Node) -> Pos:
        return Pos(node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: Node, path: KeyPath) -> object:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge()
        if len(path) > MAX_DEPTH:
            raise _Refused(node, path, _DEEP_MESSAGE, "flatten the nesting")
        self.doc.values.setdefault(path, self.pos(node))
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        if node.style in ("'", '"', "|", ">"):
            self.doc.quoted.add(path)
            return str(node.value)
        value = scalar_value(str(node.tag), str(node.value))
        if str(node.tag) == _TAG + "int" and isinstance(value, str):  # a number too large to use
            raise _Refused(node, path, TOO_LONG_NUMBER, "write a smaller number, or quote it to make it text")
        return value

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, object]:
        out: dict[str, object] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if str(key_node.tag) == _TAG + "merge":
                merges.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else "<complex key>"
            child = path + (key,)
            if key in out:
                first = self.doc.keys[child]
                self.problems.append(Problem(
                    "HR003", ERROR, self.doc.file, key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1, format_path(child),
                    f"duplicate key '{key}' (first defined at line {first.line})",
                    "remove one of the two, or merge them",
                ))
                continue
            self.doc.keys.setdefault(child, self.pos(key_node))
            out[key] = self.build(value_node, child)
        # `<<: *base` fills in keys the mapping does not set itself.
        for merged in merges:
            if isinstance(merged, MappingNode):
                for key, value in self.mapping(merged, path).items():
                    out.setdefault(key, value)
        return out


class _TooLarge(Exception):
    pass


class _Refused(Exception):
    """A value the loader will not build, and why (always HR005)."""

    def __init__(self, node: Node, path: KeyPath, message: str, hint: str) -> None:
        super().__init__(message)
        self.node = node
        self.path = path
        self.message = message
        self.hint = hint


def _values(node: Node) -> list[Node]:
    """The nodes `_Builder` builds under `node` (a mapping's keys are read, never built)."""
    if isinstance(node, MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


class _Expansion:
    """How many values each node expands to, aliases counted in full but each node counted
    once (capped just above MAX_NODES), and the first alias found inside its own anchor."""

    def __init__(self, root: Node) -> None:
        self.sizes: dict[int, int] = {}
        self.loop: Node | None = None
        active: set[int] = set()  # the nodes on the path being walked
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            key = id(node)
            if leaving:
                active.discard(key)
                total = 1 + sum(self.sizes[id(child)] for child in _values(node))
                self.sizes[key] = min(total, MAX_NODES + 1)
            elif key in active:
                self.loop = node
                return
            elif key not in self.sizes:
                active.add(key)
                stack.append((node, True))
                stack.extend((child, False) for child in _values(node))

    def size(self, node: Node) -> int:
        return self.sizes.get(id(node), 0)

    def bomb(self, root: Node) -> tuple[Node, KeyPath]:
        """The innermost value that alone expands past MAX_NODES, and its key path."""
        node = root
        path: KeyPath = ()
        while True:
            named: list[tuple[Node, KeyPath]] = []
            if isinstance(node, MappingNode):
                named = [(v, path + (str(k.value) if isinstance(k, ScalarNode) else "<complex key>",))
                         for k, v in node.value]
            elif isinstance(node, SequenceNode):
                named = [(v, path + (i,)) for i, v in enumerate(node.value)]
            inner = [(child, where) for child, where in named if self.size(child) > MAX_NODES]
            if not inner:
                return node, path
            node, path = inner[0]


def _too_deep(text: str) -> Pos | None:
    """Where collections first nest deeper than MAX_DEPTH, read from the parser's events
    alone (nothing is built); None when they do not."""
    depth = 0
    try:
        for event in _yaml().parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return Pos(event.start_mark.line + 1, event.start_mark.column + 1)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return None  # composing reports it, located
    return None


def _node_problem(file: str, node: Node, path: KeyPath, message: str, hint: str) -> Problem:
    mark = node.start_mark
    return Problem("HR005", ERROR, file, mark.line + 1, mark.column + 1, format_path(path), message, hint)


_DEEP_MESSAGE: Final = f"the document is nested too deeply to load (more than {MAX_DEPTH} levels)"


def _syntax_problem(file: str, text: str, exc: MarkedYAMLError) -> Problem:
    """Locate a YAML syntax error where the user can act on it."""
    lines = text.splitlines()
    mark = exc.problem_mark
    # An error at the end of the stream (an unclosed quote or bracket) is best shown
    # where the unclosed thing started.
    if exc.context_mark is not None and (mark is None or mark.line >= len(lines)):
        mark = exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    hint = "check indentation, quotes and colons around this place"
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in source[:column]:
        hint = "YAML does not allow tabs for indentation; use spaces"
    elif "another document" in message:
        hint = "a graph file holds one YAML document; remove the `---` separator"
    return Problem("HR002", ERROR, file, line, column, "", f"invalid YAML: {message}", hint)


def read_yaml(file: str, text: str) -> tuple[Document, list[Problem]]:
    doc = Document(file=file, format="yaml", text=text)
    problems: list[Problem] = []
    deep = _too_deep(text) if text.count("[") + text.count("{") > _FLOW_BRACKETS else None
    if deep is not None:
        return doc, [Problem("HR005", ERROR, file, deep.line, deep.column, "", _DEEP_MESSAGE, "flatten the nesting")]
    try:
        root = _yaml().compose(text)
    except MarkedYAMLError as exc:
        return doc, [_syntax_problem(file, text, exc)]
    except RecursionError:  # block nesting hundreds of levels deep
        deep = _too_deep(text) or Pos(1, 1)
        return doc, [Problem("HR005", ERROR, file, deep.line, deep.column, "", _DEEP_MESSAGE, "flatten the nesting")]
    except YAMLError as exc:
        return doc, [Problem("HR002", ERROR, file, 1, 1, "", f"invalid YAML: {exc}".splitlines()[0],
                             "check the file's structure")]
    if root is None:
        return doc, [Problem("HR004", ERROR, file, 1, 1, "", "the file holds no document",
                             "a graph file starts with `version: 1` and a `nodes:` mapping")]
    expansion = _Expansion(root)
    if expansion.loop is not None:
        return doc, [_node_problem(file, expansion.loop, (), "an alias is used inside its own anchor's value",
                                   "a value cannot contain itself; copy the part you need instead")]
    if expansion.size(root) > MAX_NODES:
        node, path = expansion.bomb(root)
        where = format_path(path) or "the document"
        return doc, [_node_problem(file, node, path, f"{where} expands to more than {MAX_NODES:,} values "
                                   "through its aliases", "write the graph out plainly, with fewer aliases")]
    try:
        doc.data = _Builder(doc, problems).build(root, ())
    except _TooLarge:  # counted above; kept as a second guard
        return doc, [Problem("HR005", ERROR, file, 1, 1, "", "the document is too large to load",
                             f"its aliases expand to more than {MAX_NODES:,} values; write the graph out plainly")]
    except _Refused as exc:
        return doc, [_node_problem(file, exc.node, exc.path, exc.message, exc.hint)]
    except RecursionError:
        return doc, [Problem("HR005", ERROR, file, 1, 1, "", _DEEP_MESSAGE, "flatten the nesting")]
    return doc, problems
