"""Property tests: whatever a user's editor leaves in a file, the loader answers with
problems or a plan, never a traceback."""

import copy
import json

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from loader import load_text
from loader.check_schema import schema_problems
from loader.read_yaml import read_yaml
from tests.conftest import ROOT

EXAMPLE_TEXTS = {p.name: p.read_text() for p in sorted((ROOT / "graphs").rglob("*")) if p.suffix in (".yaml", ".toml")}
BASE_DOCS = [read_yaml(n, t)[0].data for n, t in EXAMPLE_TEXTS.items() if n.endswith(".yaml")]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10_000) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(["i", "prcied", "block", "coalesce", "${N}", "x.__class__", "count()"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, prefix + (i,))


def _assert_outcome(result):
    assert (result.plan is None) == any(p.severity == "error" for p in result.problems)
    for problem in result.problems:
        assert problem.code.startswith("HR") and problem.line >= 0 and problem.column >= 0
        assert problem.message
    if result.plan is not None:
        json.loads(result.plan.to_json())


@SETTINGS
@given(name=st.sampled_from(sorted(EXAMPLE_TEXTS)), data=st.data())
def test_truncated_files_never_crash(registry, name, data):
    text = EXAMPLE_TEXTS[name]
    cut = data.draw(st.integers(0, len(text)))
    _assert_outcome(load_text(name, text[:cut], registry, {}))


@SETTINGS
@given(name=st.sampled_from(sorted(EXAMPLE_TEXTS)), data=st.data())
def test_character_edits_never_crash(registry, name, data):
    text = EXAMPLE_TEXTS[name]
    at = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(alphabet=":-[]{}#'\"\n ,=.$&*!|>%@`\t\\x1", max_size=4))
    drop = data.draw(st.integers(0, 3))
    _assert_outcome(load_text(name, text[:at] + junk + text[at + drop:], registry, {}))


@SETTINGS
@given(index=st.integers(0, len(BASE_DOCS) - 1), data=st.data(), replacement=json_values,
       as_toml=st.booleans())
def test_structural_mutations_never_crash(registry, index, data, replacement, as_toml):
    doc = copy.deepcopy(BASE_DOCS[index])
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    if as_toml:
        try:
            text = tomli_w.dumps(doc)
        except (TypeError, ValueError):  # TOML has no null and needs a table at the top
            return
        _assert_outcome(load_text("g.toml", text, registry, {}))
    else:
        _assert_outcome(load_text("g.yaml", json.dumps(doc), registry, {}))


COMMITTED_SCHEMA = Draft202012Validator(json.loads((ROOT / "schema/graph.v1.json").read_text()))


@SETTINGS
@given(index=st.integers(0, len(BASE_DOCS) - 1), data=st.data(), replacement=json_values)
def test_loader_schema_checks_agree_with_the_committed_schema(registry, index, data, replacement):
    """The loader dispatches `with:` validation by node type; editors use the committed
    schema's if/then rules. Both must accept and reject the same documents."""
    doc = copy.deepcopy(BASE_DOCS[index])
    paths = [p for p in _paths(doc) if len(p) > 1]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = replacement
    text = json.dumps(doc)
    parsed, _ = read_yaml("g.yaml", text)
    found = schema_problems(parsed, registry, 1)
    assert (found == []) == COMMITTED_SCHEMA.is_valid(parsed.data), found
