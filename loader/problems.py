"""Problems are values: one type for everything the loader can find wrong.

Codes are stable; tests assert on them and users search for them. `CODES` is the
catalogue `docs/problems.md` is generated from.
"""

from dataclasses import dataclass
from typing import Final

ERROR: Final = "error"
WARNING: Final = "warning"

CODES: Final[dict[str, str]] = {
    "HR001": "The file cannot be read (missing, a directory, no permission, not UTF-8).",
    "HR002": "The file is not valid YAML or TOML.",
    "HR003": "A key appears twice in one mapping or table.",
    "HR004": "The document is empty or its top level is not a mapping.",
    "HR005": "The document is too large to load safely: aliases expand too far, values nest too deeply, "
             "or a number is too large.",
    "HR010": "The `version` key is missing.",
    "HR011": "The `version` is not one this engine understands.",
    "HR020": "A required key is missing.",
    "HR021": "A key is not allowed here (often a typo).",
    "HR022": "A value has the wrong type.",
    "HR023": "A value is not one of the allowed choices.",
    "HR024": "A number is out of range, or a list or mapping has too few entries.",
    "HR025": "A value does not have the required form (pattern, combination of keys).",
    "HR030": "A node, port or graph name is not `[a-z][a-z0-9_]*`.",
    "HR031": "The node type is unknown.",
    "HR032": "`from` names a node that does not exist.",
    "HR033": "`from` names an output port the node does not have.",
    "HR034": "A source has `from`, or a transform or sink has none.",
    "HR035": "The nodes form a cycle.",
    "HR036": "The same input is listed twice in one `from`.",
    "HR037": "Edge options do not fit the policy (e.g. `coalesce` without `key`).",
    "HR038": "`from` reads from a sink, which has no output.",
    "HR039": "Window options are inconsistent.",
    "HR040": "An expression is not valid syntax.",
    "HR041": "An expression uses a construct that is not allowed.",
    "HR042": "An expression calls an unknown function.",
    "HR043": "A function is called with the wrong number of arguments.",
    "HR044": "An expression uses a name starting with `_`.",
    "HR045": "An aggregate field uses an unknown aggregate function.",
    "HR046": "An aggregate field is not one aggregate call, or one is used elsewhere.",
    "HR047": "An expression reads a name that does not exist in its scope.",
    "HR048": "An expression cannot run in a GPU segment (text, lists, an undeclared column, ...).",
    "HR049": "A GPU segment is set up wrongly (no `columns` on its first node, a reduction, a kernel's columns).",
    "HR050": "An environment variable is not set and has no default.",
    "HR051": "An interpolation `${...}` is malformed.",
    "HR052": "A secret variable (`${secret:VAR}`, or one `secret_env` lists) is used outside a node's `with:`.",
    "HR053": "A function's literal argument can never work: an invalid regular expression (RE2 syntax), "
             "replacement or format template, a `get` path, a `truncate_time` duration or a time zone.",
    "HR060": "Two files in one directory declare the same graph name.",
    "HR066": "A `join` does not read exactly two inputs, or its `left` or `right` does not name one of them.",
    "HR070": "A node's output is never consumed (warning).",
    "HR071": "A source that acknowledges messages to its system feeds an edge that is not durable: a crash "
             "loses what is in memory, at-most-once (warning).",
    "HR080": "An old-format file needs a decision before it can be upgraded (see docs/migrations.md).",
    "HR081": "The file uses an older format version: it runs, upgraded in memory (warning).",
    "HR090": "A graph test names a node, port, edge or counter its graph does not have, or feeds a node that is "
             "not a source.",
    "HR091": "A graph test's fixture file cannot be read, or a line in it is not an event.",
    "HR092": "A graph test's `graph:` file does not exist.",
    "HR093": "Two tests in one test file have the same name.",
    "HR100": "A partitioned stage is entered through more than one edge (a node with `parallelism` and two "
             "inputs, or a stage entered in two places).",
    "HR101": "`parallelism` on a source, a sink or a node of a node family (GPU): those run in the engine process.",
    "HR102": "A node with keyed state (`aggregate`, `dedupe`) has `parallelism` but its input is not partitioned "
             "by its key (`partition_by`), or it keeps one state for all events.",
    "HR103": "A durable edge leads into, out of or inside a partitioned stage.",
    "HR104": "A node with `parallelism` has `on_error: retry`.",
    "HR105": "`partition_by` on the input of a node that runs as one instance: it has no effect (warning).",
}


@dataclass(frozen=True)
class Problem:
    code: str
    severity: str
    file: str
    line: int  # 1-based; 0 when the problem is about the whole file
    column: int  # 1-based; 0 when the problem is about the whole file
    path: str  # key path such as `nodes.out.from`; empty for the whole document
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.column, self.code, self.message)


def format_path(parts: tuple[object, ...]) -> str:
    """`('nodes', 'out', 'from', 0)` -> `nodes.out.from[0]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == ERROR for p in problems)
