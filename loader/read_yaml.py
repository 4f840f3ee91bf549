"""YAML -> Document, keeping the line and column of every key and value.

ruamel.yaml (YAML 1.2) composes the node tree (marks, styles, resolved tags); we build the plain
data from it ourselves so that every duplicate key is reported (not just the first),
aliases cannot blow up memory, and no YAML type leaks past the loader.
"""

from typing import Final

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loader.document import Document, KeyPath, Pos
from loader.problems import ERROR, Problem, format_path

MAX_NODES: Final = 200_000
_TAG: Final = "tag:yaml.org,2002:"


def _yaml() -> YAML:
    # The C parser (ruamel.yaml.clib) keeps marks and styles and is ~10x faster than the
    # pure one; ruamel falls back to pure Python where the extension is missing.
    return YAML(typ="safe", pure=False)


_RESOLVER_YAML: Final = _yaml()


def scalar_value(tag: str, text: str) -> object:
    """The Python value YAML 1.2 gives a plain scalar with the resolved `tag`."""
    kind = tag[len(_TAG):] if tag.startswith(_TAG) else "str"
    try:
        if kind == "null":
            return None
        if kind == "bool":
            return text.lower() == "true"
        if kind == "int":
            digits = text.replace("_", "")
            try:
                return int(digits, 0)
            except ValueError:
                return int(digits, 10)
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
        self.doc.values.setdefault(path, self.pos(node))
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        if node.style in ("'", '"', "|", ">"):
            self.doc.quoted.add(path)
            return str(node.value)
        return scalar_value(str(node.tag), str(node.value))

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
    try:
        root = _yaml().compose(text)
    except MarkedYAMLError as exc:
        return doc, [_syntax_problem(file, text, exc)]
    except (YAMLError, RecursionError) as exc:
        return doc, [Problem("HR002", ERROR, file, 1, 1, "", f"invalid YAML: {exc}".splitlines()[0],
                             "check the file's structure")]
    if root is None:
        return doc, [Problem("HR004", ERROR, file, 1, 1, "", "the file holds no document",
                             "a graph file starts with `version: 1` and a `nodes:` mapping")]
    try:
        doc.data = _Builder(doc, problems).build(root, ())
    except _TooLarge:
        return doc, [Problem("HR005", ERROR, file, 1, 1, "", "the document is too large to load",
                             "its aliases expand to more than 200,000 values; write the graph out plainly")]
    except RecursionError:
        return doc, [Problem("HR005", ERROR, file, 1, 1, "", "the document is nested too deeply to load",
                             "flatten the nesting")]
    return doc, problems
