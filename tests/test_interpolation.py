"""`${VAR}` interpolation happens on parsed values, never on raw text."""

from loader import load_text

GRAPH = """\
version: 1
# a commented-out ${{HEADRACE_TEST_UNSET_IN_COMMENT}} is never interpolated
nodes:
  gen:
    type: generate
    with:
      count: {count}
      fields: {{label: "'${{LABEL:-none}}'"}}
  out:
    type: file.write
    from: gen
    with:
      path: {path}
"""


def graph(count="10", path="out.jsonl") -> str:
    return GRAPH.format(count=count, path=path)


def params(result, node):
    assert result.plan is not None, result.problems
    return result.plan.node(node).params()


def test_exact_variable_takes_the_yaml_type(registry):
    result = load_text("g.yaml", graph(count="${N}"), registry, {"N": "25"})
    assert params(result, "gen")["count"] == 25


def test_default_is_used_when_unset_or_empty(registry):
    text = graph(count="${N:-7}")
    assert params(load_text("g.yaml", text, registry, {}), "gen")["count"] == 7
    assert params(load_text("g.yaml", text, registry, {"N": ""}), "gen")["count"] == 7
    assert params(load_text("g.yaml", text, registry, {"N": "3"}), "gen")["count"] == 3


def test_variables_inside_text_stay_strings(registry):
    result = load_text("g.yaml", graph(path="out/${DAY}/x-${N:-1}.jsonl"), registry, {"DAY": "2026-11-21"})
    assert params(result, "out")["path"] == "out/2026-11-21/x-1.jsonl"


def test_quoted_exact_variable_stays_a_string_in_yaml(registry):
    result = load_text("g.yaml", graph(path='"${P}"'), registry, {"P": "123"})
    assert params(result, "out")["path"] == "123"


def test_toml_exact_variable_is_typed(registry):
    text = ('version = 1\n[nodes.gen]\ntype = "generate"\nwith = { count = "${N}", fields = { a = "i" } }\n'
            '[nodes.out]\ntype = "null"\nfrom = "gen"\n')
    result = load_text("g.toml", text, registry, {"N": "5"})
    assert params(result, "gen")["count"] == 5


def test_missing_variable_is_a_problem_at_its_line(registry):
    result = load_text("g.yaml", graph(count="${HEADRACE_TEST_UNSET_N}"), registry, {})
    assert result.plan is None
    [problem] = result.problems
    assert (problem.code, problem.line, problem.column, problem.path) == ("HR050", 7, 14, "nodes.gen.with.count")
    assert "HEADRACE_TEST_UNSET_N" in problem.message
    assert "${HEADRACE_TEST_UNSET_N:-value}" in problem.hint


def test_comments_are_not_interpolated(registry):
    result = load_text("g.yaml", graph(), registry, {})
    assert result.problems == []


def test_escape_writes_a_literal(registry):
    result = load_text("g.yaml", graph(path="'$${HOME}/x'"), registry, {"HOME": "/root"})
    assert params(result, "out")["path"] == "${HOME}/x"


def test_malformed_reference_is_reported(registry):
    result = load_text("g.yaml", graph(path="'${not valid}'"), registry, {})
    assert [p.code for p in result.problems] == ["HR051"]
    assert result.problems[0].line == 13


def test_wrong_type_after_substitution_names_the_variable(registry):
    result = load_text("g.yaml", graph(count="${N}"), registry, {"N": "many"})
    [problem] = result.problems
    assert problem.code == "HR022"
    assert "${N}" in problem.hint


def test_keys_are_not_interpolated(registry):
    text = graph().replace("  gen:\n", "  gen:\n    description: ${X}\n").replace("label:", '"${X}":')
    result = load_text("g.yaml", text, registry, {"X": "label"})
    assert params(result, "gen")["fields"] == {"${X}": "'none'"}
