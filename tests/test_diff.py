"""`engine diff OLD NEW`: serve's reload decision, shown per graph and per node."""

import json
import textwrap

import yaml

from adapters.serve.decide import Current, decide
from adapters.serve.running import RUNNING
from adapters.serve.scan import scan_once
from engine.plan_chains import run_chains
from loader.api import load_text
from tests.conftest import ROOT
from tests.runtime_support import test_registry as make_registry

PIPE = """
version: 2
name: pipe
nodes:
  src: {type: generate, with: {count: 5, fields: {id: i}}}
  priced: {type: map, from: src, with: {set: {cents: "id * 100"}}}
  out: {type: "null", from: priced}
"""
POST = """
version: 2
name: post
nodes:
  src: {type: generate, with: {count: 3, fields: {id: i}}}
  send:
    type: http.post
    from: src
    with: {url: "http://${DIFF_TEST_UNSET_HOST}/in", headers: {Authorization: "Bearer %s"}}
"""


def write(directory, name, text):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(text))


def diff_json(cli, old, new, *more):
    code, out, err = cli("diff", str(old), str(new), "--format", "json", *more)
    return code, json.loads(out) if out else None, err


def test_a_changed_sink_parameter_replaces_it_and_keeps_the_rest(cli, tmp_path):
    write(tmp_path / "old", "pipe.yaml", PIPE)
    write(tmp_path / "new", "pipe.yaml", PIPE.replace('"id * 100"', '"id * 1000"'))
    code, out, _ = diff_json(cli, tmp_path / "old", tmp_path / "new")
    assert code == 0
    graph = out["graphs"]["pipe"]
    assert graph["action"] == "updated"
    assert graph["nodes"] == {"out": "replaced", "priced": "replaced", "src": "kept"}
    assert graph["changes"] == [{"path": "nodes.priced.with.set.cents", "old": "id * 100", "new": "id * 1000"}]


def test_added_removed_unchanged_and_comment_only(cli, tmp_path):
    write(tmp_path / "old", "pipe.yaml", PIPE)
    write(tmp_path / "old", "gone.yaml", PIPE.replace("name: pipe", "name: gone"))
    write(tmp_path / "new", "pipe.yaml", "# a comment only\n" + PIPE)
    write(tmp_path / "new", "fresh.yaml", PIPE.replace("name: pipe", "name: fresh"))
    code, out, _ = diff_json(cli, tmp_path / "old", tmp_path / "new", "--exit-code")
    assert code == 1  # something changes
    actions = {name: g["action"] for name, g in out["graphs"].items()}
    assert actions == {"pipe": "unchanged", "fresh": "added", "gone": "removed"}
    assert out["graphs"]["fresh"]["nodes"] == {"src": "added", "priced": "added", "out": "added"}


def test_comment_only_change_exits_0_with_exit_code(cli, tmp_path):
    write(tmp_path / "old", "pipe.yaml", PIPE)
    write(tmp_path / "new", "pipe.yaml", PIPE.replace("name: pipe", "name: pipe  # the same"))
    code, out, _ = cli("diff", str(tmp_path / "old" / "pipe.yaml"), str(tmp_path / "new" / "pipe.yaml"),
                       "--exit-code")
    assert code == 0
    assert out == "pipe (pipe.yaml): unchanged\n"


def test_a_broken_file_is_rejected_with_its_place_and_the_rest_is_diffed(cli, tmp_path):
    write(tmp_path / "old", "pipe.yaml", PIPE)
    write(tmp_path / "old", "other.yaml", PIPE.replace("name: pipe", "name: other"))
    write(tmp_path / "new", "pipe.yaml", PIPE.replace("from: priced", "from: nowhere"))
    write(tmp_path / "new", "other.yaml", PIPE.replace("name: pipe", "name: other").replace("count: 5", "count: 6"))
    code, out, _ = cli("diff", str(tmp_path / "old"), str(tmp_path / "new"))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "other (other.yaml): updated"
    assert "  nodes.src.with.count: 5 → 6" in lines
    assert "pipe (pipe.yaml): rejected" in lines
    problem = next(line for line in lines if line.startswith("  problem: "))
    assert f"{tmp_path / 'new' / 'pipe.yaml'}:7:" in problem and "nowhere" in problem
    assert "  what runs now keeps running" in lines


def test_secrets_are_masked_and_a_rotated_one_is_a_change(cli, tmp_path):
    write(tmp_path / "old", "post.yaml", POST % "token-old-123456")
    write(tmp_path / "new", "post.yaml", POST % "token-new-654321")
    code, out, _ = cli("diff", str(tmp_path / "old"), str(tmp_path / "new"), "--format", "markdown")
    assert code == 0
    assert "token-old" not in out and "token-new" not in out
    assert "| post | post.yaml | **updated** | kept src; replaced send |" in out
    assert '- nodes.send.with.headers: "\\*\\*\\*\\*" → "\\*\\*\\*\\*" (secret changed)' in out


def test_an_unset_variable_is_compared_and_shown_as_written(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("DIFF_TEST_UNSET_HOST", raising=False)
    write(tmp_path / "old", "post.yaml", POST % "same-token-123")
    write(tmp_path / "new", "post.yaml", (POST % "same-token-123").replace("/in", "/v2/in"))
    code, out, _ = diff_json(cli, tmp_path / "old", tmp_path / "new")
    assert code == 0
    changes = out["graphs"]["post"]["changes"]
    shown = [c for c in changes if c["path"] == "nodes.send.with.url" and not c.get("secret")]
    assert shown == [{"path": "nodes.send.with.url", "old": "http://${DIFF_TEST_UNSET_HOST}/in",
                      "new": "http://${DIFF_TEST_UNSET_HOST}/v2/in"}]


def test_a_removed_durable_edge_is_orphaned_and_a_prune_candidate(cli, tmp_path):
    durable = PIPE.replace("from: src,", "from: {node: src, edge: {durable: true}},")
    write(tmp_path / "old", "pipe.yaml", durable)
    write(tmp_path / "new", "pipe.yaml", PIPE)
    code, out, _ = diff_json(cli, tmp_path / "old", tmp_path / "new")
    assert code == 0
    graph = out["graphs"]["pipe"]
    assert graph["edges"]["src->priced"]["changes"] == [{"path": "durable", "old": True}]
    assert graph["consequences"]["orphaned"] == [
        {"edge": "src->priced", "why": "the edge is no longer durable", "prune": "pipe/src->priced"}]
    assert graph["whole_swap"] == "durable edge 'src->priced' feeds or leaves a changed node"
    assert graph["consequences"]["sources_start_over"] == ["src"]


def test_format_version_upgrade_is_named(cli, tmp_path):
    write(tmp_path / "old", "pipe.yaml", PIPE.replace("version: 2", "version: 1"))
    write(tmp_path / "new", "pipe.yaml", PIPE)
    code, out, _ = diff_json(cli, tmp_path / "old", tmp_path / "new")
    assert code == 0
    assert out["graphs"]["pipe"]["action"] == "unchanged"  # the same plan: nothing restarts
    assert out["graphs"]["pipe"]["format_version"] == {"old": 1, "new": 2}


def test_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    code, out, err = cli("diff", str(tmp_path / "missing"), str(tmp_path))
    assert code == 2 and out == ""
    assert err == (f"engine: error: {tmp_path / 'missing'}: no such file or directory; "
                   "give two graph files or two directories\n")
    code, _, err = cli("diff", str(tmp_path))
    assert code == 2 and err.count("\n") == 1


def test_diff_and_serve_share_one_decision(tmp_path):
    """The decision `engine diff` prints is the one Host.apply acts on (adapters/serve/decide.py)."""
    registry = make_registry()
    write(tmp_path / "new", "pipe.yaml", PIPE.replace("count: 5", "count: 7"))
    plan = load_text("pipe.yaml", textwrap.dedent(PIPE), registry).plan
    current = {"pipe.yaml": Current(plan, plan.content_hash(), RUNNING, lambda: run_chains(plan, registry))}
    (decision,) = decide(current, scan_once(tmp_path / "new"), registry, {})
    assert decision.result == "updated" and decision.nodes.replaced == ("out", "priced", "src")
    assert decision.nodes.whole_swap == "every node changed"


def test_the_github_actions_example_posts_the_markdown_diff():
    workflow = yaml.safe_load((ROOT / "docs" / "examples" / "github-actions-diff.yaml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    scripts = "\n".join(str(step.get("run", "")) for step in steps)
    assert "engine diff --git" in scripts and "--format markdown" in scripts
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
