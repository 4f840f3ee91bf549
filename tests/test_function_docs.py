"""docs/expressions.md lists every expression function, and its examples give what they say.

The function names come from engine.expr.FUNCTIONS when the test runs, so a function added
to the language without a row in the documentation's table fails here.
"""

import ast
import random
import re

import pytest

from engine.compile_expr import ExprCompiler
from engine.expr import FUNCTIONS, check
from engine.node import ManualClock
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "expressions.md").read_text()
ROWS = [line for line in DOC.splitlines() if line.startswith("|")]
# `call(...)` → `result` in a table cell: the example runs against an empty event.
EXAMPLE = re.compile(r"`([^`]+)` → `([^`]+)`")
EXAMPLES = [match.groups() for row in ROWS for match in EXAMPLE.finditer(row)]


def documented(name: str) -> bool:
    """A table row shows the function called: `name(` inside backquotes."""
    call = re.compile(r"`" + re.escape(name) + r"\(")
    return any(call.search(row) for row in ROWS)


def test_every_function_has_a_row_in_the_function_table() -> None:
    missing = sorted(name for name in FUNCTIONS if not documented(name))
    assert missing == [], f"add a row to docs/expressions.md for: {', '.join(missing)}"


def test_the_check_finds_a_missing_function() -> None:
    assert not documented("no_such_function")
    assert documented("sha256") and documented("sqrt") and documented("len")


def test_the_table_has_examples() -> None:
    assert len(EXAMPLES) >= 50


@pytest.mark.parametrize(("source", "expected"), EXAMPLES, ids=[source for source, _ in EXAMPLES])
def test_documented_example_gives_its_result(source: str, expected: str) -> None:
    assert check(source) == [], source
    compiled = ExprCompiler(random.Random(0), ManualClock()).value(source, "doc")
    result = compiled.fn({})
    want = ast.literal_eval(expected)
    assert result == want
    assert type(result) is type(want)
