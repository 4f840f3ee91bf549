"""`${secret:VAR}` and `secret_env`: a `with:` value taken from a secret variable is masked
wherever the plan is shown, whatever its node type, and the plan keeps a salted hash of it
so rotating the secret changes the plan's hash."""

import hashlib
import json

from adapters.cli.registry import default_registry
from engine.plan import plan_from_dict
from engine.runtime import Runtime
from engine.secrets import MASK, SECRET_HASH_PREFIX, mask_known, node_secret_texts, plan_secret_texts
from loader.api import load_text
from migrations import CURRENT_VERSION

TOKEN = "tok-Secret-8842"
WORD = "blocked-Word-11"

GRAPH = """version: 2
secret_env: [HOOK]
nodes:
  src: {type: generate, with: {count: 3, fields: {user: "'u' + str(i)"}}}
  kept: {type: filter, from: src, with: {where: "user != '${secret:WORD}'"}}
  post:
    type: http.post
    from: kept
    with:
      url: "https://hooks.example.com/${HOOK}"
      headers: {Authorization: "Bearer ${secret:TOKEN}", X-Team: data}
"""
ENV = {"WORD": WORD, "TOKEN": TOKEN, "HOOK": "hook-Path-5521"}


def load(text: str = GRAPH, env: dict[str, str] | None = None, file: str = "g.yaml"):  # type: ignore[no-untyped-def]
    return load_text(file, text, default_registry(), env=ENV if env is None else env)


def test_values_from_secret_variables_print_as_mask_with_their_hashes(cli, tmp_path, monkeypatch):
    path = tmp_path / "g.yaml"
    path.write_text(GRAPH)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code, out, err = cli("plan", str(path))
    assert code == 0, err
    assert all(value not in out for value in ENV.values())
    plan = json.loads(out)
    assert plan["nodes"]["kept"]["with"]["where"] == MASK  # a filter: no type marks it, the variable does
    assert plan["nodes"]["post"]["with"]["url"] == MASK  # secret_env: the whole value, not only a password
    assert plan["nodes"]["post"]["with"]["headers"] == {"Authorization": MASK, "X-Team": MASK}
    digests = plan["nodes"]["kept"]["secrets"]
    assert list(digests) == ["/where"] and digests["/where"].startswith(SECRET_HASH_PREFIX)
    assert sorted(plan["nodes"]["post"]["secrets"]) == ["/headers", "/headers/Authorization", "/url"]
    assert "secrets" not in plan["nodes"]["src"]
    # not a plain hash of the value: a guess cannot be checked at sha256 speed
    assert hashlib.sha256(f"user != '{WORD}'".encode()).hexdigest() not in out


def test_rotating_a_secret_changes_the_plan_hash_and_nothing_printed_but_its_digest():
    first, same, rotated = load(), load(), load(env={**ENV, "WORD": "another-Word-99"})
    assert first.plan is not None and same.plan is not None and rotated.plan is not None
    assert first.plan.content_hash() == same.plan.content_hash()
    assert first.plan.content_hash() != rotated.plan.content_hash()
    shown, shown_rotated = first.plan.to_dict(), rotated.plan.to_dict()
    assert shown["nodes"]["kept"]["with"] == shown_rotated["nodes"]["kept"]["with"] == {"where": MASK}
    assert shown["nodes"]["kept"]["secrets"] != shown_rotated["nodes"]["kept"]["secrets"]
    assert first.plan.node("kept").params() == {"where": f"user != '{WORD}'"}  # the node runs with the value
    # a reload compares node plans: the node using the secret is replaced, the others kept
    assert first.plan.node("kept") != rotated.plan.node("kept")
    assert first.plan.node("src") == rotated.plan.node("src") and first.plan.node("post") == rotated.plan.node("post")


def test_a_printed_plan_rebuilds_into_the_same_hash_still_masked():
    result = load()
    assert result.plan is not None
    again = plan_from_dict(json.loads(result.plan.to_json()))
    assert again.content_hash() == result.plan.content_hash()
    assert again.to_json() == result.plan.to_json()
    assert all(WORD not in node.params_json and TOKEN not in node.params_json for node in again.nodes)


def test_a_variable_not_marked_secret_is_shown_as_before():
    text = GRAPH.replace("secret_env: [HOOK]\n", "")
    result = load(text)
    assert result.plan is not None
    assert result.plan.to_dict()["nodes"]["post"]["with"]["url"] == "https://hooks.example.com/hook-Path-5521"


def test_log_lines_lose_the_variable_text_even_inside_a_longer_value():
    result = load()
    assert result.plan is not None
    registry = default_registry()
    texts = node_secret_texts(registry.get("http.post"), result.plan.node("post"))
    assert TOKEN in texts and f"Bearer {TOKEN}" in texts and "hook-Path-5521" in texts
    assert mask_known(f"401 for token {TOKEN}", texts) == "401 for token ****"
    everything = plan_secret_texts(result.plan, registry)
    assert WORD in everything
    runtime = Runtime(result.plan, registry)
    runtime.fail(f"node 'kept': cannot compare with {WORD}")
    assert runtime.failure == "node 'kept': cannot compare with ****"


def test_a_secret_outside_a_with_value_is_refused_without_its_value():
    text = GRAPH.replace("version: 2\n", "version: 2\ndescription: \"${secret:TOKEN}\"\n")
    result = load(text)
    assert result.plan is None
    [problem] = [p for p in result.problems if p.code == "HR052"]
    assert (problem.line, problem.path) == (2, "description")
    assert "outside a node's `with:`" in problem.message and "\n" not in problem.message
    assert all(TOKEN not in p.message + p.hint for p in result.problems)
    listed = load(GRAPH.replace("nodes:\n", "name: ${HOOK}\nnodes:\n"))
    assert [p.code for p in listed.problems if p.code == "HR052"] == ["HR052"]


def test_a_schema_problem_never_quotes_a_secret_value():
    text = GRAPH.replace("X-Team: data}", "X-Team: data}\n      retries: \"${secret:RETRIES}\"")
    result = load(text, env={**ENV, "RETRIES": "many-Retries-77"})
    codes = {p.code for p in result.problems}
    assert "HR022" in codes, result.problems
    assert all("many-Retries-77" not in p.message + p.hint for p in result.problems)


def test_secret_env_names_are_checked_and_a_malformed_reference_is_one_problem():
    bad_name = load(GRAPH.replace("secret_env: [HOOK]", "secret_env: [1HOOK]"))
    assert [p.path for p in bad_name.problems if p.code == "HR025"] == ["secret_env[0]"]
    malformed = load(GRAPH.replace("${secret:WORD}", "${secret:}"))
    [problem] = [p for p in malformed.problems if p.code == "HR051"]
    assert "${secret:NAME}" in problem.hint


def test_toml_and_an_older_format_version_take_secrets_too():
    toml = """version = 2
secret_env = ["HOOK"]
[nodes.src]
type = "generate"
with = {count = 1, fields = {n = "i"}}
[nodes.post]
type = "http.post"
from = "src"
with = {url = "https://x.example.com/${HOOK}", headers = {A = "${secret:TOKEN}"}}
"""
    result = load(toml, file="g.toml")
    assert result.plan is not None, result.problems
    assert result.plan.to_dict()["nodes"]["post"]["with"]["url"] == MASK
    old = load(GRAPH.replace("version: 2", "version: 1"))
    assert old.plan is not None and old.plan.format_version == CURRENT_VERSION
    assert old.plan.to_dict()["nodes"]["kept"]["with"]["where"] == MASK
