"""Generated version-1 graph documents, written out as YAML or TOML in many styles with a
numbered comment (`# c7`) in many places, for the `engine migrate` property tests."""

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

NAMES = ["a", "b", "c", "d"]
Draw = Callable[[st.SearchStrategy[Any]], Any]


def _shuffled(mapping: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.permutations(list(mapping.items())).map(dict)


EDGE_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "capacity": st.sampled_from([1, 5, 64, 4096]),
    "policy": st.sampled_from(["block", "drop_newest", "drop_oldest", "latest", "coalesce"]),
    "key": st.sampled_from(["k", ["k", "j"]]),
    "merge": st.sampled_from([{"n": "sum"}, {"n": "max", "m": "last"}]),
    "storage": st.sampled_from(["lmdb", "memory"]),
}
edge_options = st.fixed_dictionaries({}, optional=EDGE_OPTIONS).flatmap(_shuffled)
an_input = st.sampled_from(NAMES) | st.fixed_dictionaries(
    {"node": st.sampled_from(NAMES)}, optional={"port": st.just("out"), **EDGE_OPTIONS}).flatmap(_shuffled)
a_from = an_input | st.lists(an_input, min_size=1, max_size=3)
a_node = (st.just({"type": "generate", "with": {"count": 1}})
          | st.fixed_dictionaries({"type": st.sampled_from(["stdout", "map"]), "from": a_from}))


@st.composite
def documents(draw: Draw) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1}
    if draw(st.booleans()):
        doc["defaults"] = {"edge": draw(edge_options)}
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    doc["nodes"] = {name: draw(a_node) for name in names}
    return doc


class _Writer:
    def __init__(self, draw: Draw) -> None:
        self.draw = draw
        self.lines: list[str] = []
        self.comments: list[str] = []

    def maybe(self, chance: float = 0.3) -> bool:
        return bool(self.draw(st.floats(0, 1)) < chance)

    def comment(self) -> str:
        self.comments.append(f"# c{len(self.comments) + 1}")
        return self.comments[-1]

    def eol(self) -> str:
        return f"{' ' * self.draw(st.integers(1, 3))}{self.comment()}" if self.maybe() else ""

    def comment_line(self, indent: int) -> None:
        if self.maybe(0.2):
            self.lines.append(" " * indent + self.comment())


class _Yaml(_Writer):
    def __init__(self, draw: Draw) -> None:
        super().__init__(draw)
        self.indent = draw(st.sampled_from([2, 4]))
        self.offset = draw(st.sampled_from([0, 2]))  # where a sequence's `-` goes under its key

    def scalar(self, value: Any) -> str:
        if isinstance(value, str) and self.maybe(0.2):
            return f'"{value}"' if self.maybe(0.5) else f"'{value}'"
        return str(value)

    def flow(self, value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self.flow(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flow(v) for v in value) + "]"
        return self.scalar(value)

    def mapping(self, mapping: dict[str, Any], indent: int) -> None:
        for key, value in mapping.items():
            self.comment_line(indent)
            if isinstance(value, dict) and value and self.maybe(0.6):
                self.lines.append(f"{' ' * indent}{key}:{self.eol()}")
                self.mapping(value, indent + self.indent)
            elif isinstance(value, list) and value and self.maybe(0.6):
                self.lines.append(f"{' ' * indent}{key}:{self.eol()}")
                self.sequence(value, indent + self.offset)
            else:
                self.lines.append(f"{' ' * indent}{key}: {self.flow(value)}{self.eol()}")

    def sequence(self, items: list[Any], indent: int) -> None:
        for item in items:
            self.comment_line(indent)
            if isinstance(item, dict) and item and self.maybe(0.6):
                start = len(self.lines)
                self.mapping(item, indent + 2)
                while not self.lines[start].lstrip().startswith(tuple(item)):  # comments before the first key
                    start += 1
                self.lines[start] = " " * indent + "- " + self.lines[start][indent + 2:]
            else:
                self.lines.append(f"{' ' * indent}- {self.flow(item)}{self.eol()}")


class _Toml(_Writer):
    def value(self, value: Any) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {self.value(v)}" for k, v in value.items()) + " }"
        if isinstance(value, list):
            return "[" + ", ".join(self.value(v) for v in value) + "]"
        if isinstance(value, str):
            return f"'{value}'" if self.maybe(0.2) else f'"{value}"'
        return str(value)

    def keys(self, mapping: dict[str, Any], table: str) -> None:
        """`key = value` lines, then sub-tables for some mapping values."""
        later = []
        for key, value in mapping.items():
            if isinstance(value, dict) and self.maybe(0.3):
                later.append((key, value))
                continue
            self.comment_line(0)
            self.lines.append(f"{key} = {self.value(value)}{self.eol()}")
        for key, value in later:
            self.table(value, f"{table}.{key}")

    def table(self, mapping: dict[str, Any], name: str, array: bool = False) -> None:
        self.lines.append("")
        self.comment_line(0)
        self.lines.append(f"[[{name}]]" if array else f"[{name}]")
        self.keys(mapping, name)

    def node(self, name: str, node: dict[str, Any]) -> None:
        source = node.get("from")
        if isinstance(source, list) and all(isinstance(s, dict) for s in source) and self.maybe(0.6):
            self.table({k: v for k, v in node.items() if k != "from"}, f"nodes.{name}")
            for entry in source:
                self.table(entry, f"nodes.{name}.from", array=True)
        else:  # `from` inline, or as a [nodes.NAME.from] table
            self.table(node, f"nodes.{name}")


def write_yaml(doc: dict[str, Any], draw: Draw) -> tuple[str, list[str]]:
    writer = _Yaml(draw)
    if writer.maybe():
        writer.lines.append(writer.comment())
    writer.mapping(doc, 0)
    return "\n".join(writer.lines) + "\n", writer.comments


def write_toml(doc: dict[str, Any], draw: Draw) -> tuple[str, list[str]]:
    writer = _Toml(draw)
    if writer.maybe():
        writer.lines.append(writer.comment())
    writer.lines.append(f"version = 1{writer.eol()}")
    if "defaults" in doc:
        if writer.maybe(0.5):
            writer.table(doc["defaults"]["edge"], "defaults.edge")
        else:
            writer.table(doc["defaults"], "defaults")
    for name, node in doc["nodes"].items():
        writer.node(name, node)
    return "\n".join(writer.lines) + "\n", writer.comments
