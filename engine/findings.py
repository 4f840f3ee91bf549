"""Problems found by engine-side checks, placed by where they are in the graph file.

The engine never reads YAML, so it cannot say on which line a problem is; it can say which
key of the file holds it (`("nodes", "scale", "with", "set", "y")`). The loader locates a
`Finding` in the document and turns it into its one problem type, with file, line and
column. A node family's checks (SpecRegistry) return these.
"""

from dataclasses import dataclass

from engine.expr import ExprError

# A key path into the graph file as the current format writes it.
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    code: str  # a stable HR0xx code, listed in loader/problems.py
    path: KeyPath
    message: str  # one line
    hint: str = ""  # the fix, one line
    at_key: bool = False  # point at the key rather than its value
    # An error inside the expression held at `path`: its line and column within the
    # expression's text place the problem inside the value.
    expression_error: ExprError | None = None
