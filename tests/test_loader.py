"""Loader behaviours users rely on, beyond the corpus snapshots."""

from loader import load_directory, load_text

VALID = "version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n  b: {type: stdout, from: a}\n"


def codes(result):
    return [p.code for p in result.problems]


def test_byte_order_mark_is_accepted_in_both_formats(registry):
    assert load_text("g.yaml", "\ufeff" + VALID, registry).problems == []
    toml = ('\ufeffversion = 1\n[nodes.a]\ntype = "file.read"\nwith = { path = "x" }\n'
            '[nodes.b]\ntype = "stdout"\nfrom = "a"\n')
    assert load_text("g.toml", toml, registry).problems == []


def test_empty_toml_is_an_empty_document(registry):
    assert codes(load_text("g.toml", "# nothing yet\n", registry)) == ["HR004"]


def test_every_duplicate_key_is_reported_with_both_lines(registry):
    text = VALID + "  a: {type: stdin}\n  b: {type: stdout, from: a}\n"
    result = load_text("g.yaml", text, registry)
    assert codes(result) == ["HR003", "HR003"]
    assert [p.line for p in result.problems] == [5, 6]
    assert "first defined at line 3" in result.problems[0].message


def test_merge_keys_fill_in_defaults(registry):
    text = ("version: 1\nnodes:\n  a: &src {type: file.read, with: {path: x}}\n"
            "  c:\n    <<: *src\n    with: {path: y}\n  b: {type: stdout, from: [a, c]}\n")
    result = load_text("g.yaml", text, registry)
    assert result.problems == []
    assert result.plan.node("c").params()["path"] == "y"
    assert result.plan.node("c").type == "file.read"


def test_node_with_a_broken_type_is_not_reported_as_unknown(registry):
    text = VALID.replace("type: file.read", "type: file.raed")
    result = load_text("g.yaml", text, registry)
    assert codes(result) == ["HR031"]
    assert result.problems[0].hint == "did you mean 'file.read'?"


def test_missing_with_names_what_is_needed(registry):
    text = VALID.replace("  b: {type: stdout, from: a}", "  b: {type: filter, from: a}\n  c: {type: stdout, from: b}")
    [problem] = load_text("g.yaml", text, registry).problems
    assert (problem.code, problem.path, problem.line) == ("HR020", "nodes.b", 4)
    assert problem.hint == "filter needs parameters under `with:`: where"


def test_suggestions_are_only_valid_names(registry):
    text = VALID.replace("  b: {type: stdout, from: a}", "  Clean-A: {type: stdout, from: clean_a}")
    result = load_text("g.yaml", text, registry)
    assert "HR030" in codes(result)
    assert all("Clean-A" not in p.hint for p in result.problems if p.code == "HR032")


def test_graph_name_is_read_even_when_the_version_is_wrong(tmp_path, registry):
    (tmp_path / "x.yaml").write_text("name: first\nnodes: {}\n")
    (tmp_path / "x.toml").write_text('name = "second"\nversion = 9\n')
    results = load_directory(tmp_path, registry)
    assert sorted(r.name for r in results) == ["first", "second"]
    assert "HR060" not in {p.code for r in results for p in r.problems}


def test_cycle_is_reported_once_with_its_path(registry):
    text = ("version: 1\nnodes:\n  a: {type: map, from: c, with: {remove: [x]}}\n"
            "  b: {type: map, from: a, with: {remove: [x]}}\n  c: {type: map, from: b, with: {remove: [x]}}\n"
            "  d: {type: stdout, from: c}\n")
    [problem] = load_text("g.yaml", text, registry).problems
    assert problem.code == "HR035"
    assert "a <- c <- b <- a" in problem.message


def test_dead_letter_adds_an_errors_port(registry):
    text = VALID.replace("  b: {type: stdout, from: a}",
                         "  b: {type: map, from: a, with: {set: {y: 'int(x)'}}, on_error: dead_letter}\n"
                         "  c: {type: stdout, from: b}\n  d: {type: file.write, from: b.errors, with: {path: dlq}}")
    result = load_text("g.yaml", text, registry)
    assert result.problems == []
    assert result.plan.node("b").outputs == ("out", "errors")
    assert "b.errors->d" in {e.id for e in result.plan.edges}
