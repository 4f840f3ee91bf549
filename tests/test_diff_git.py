"""`engine diff --git REF [DIR]`: a directory as of a commit against the working tree."""

import subprocess
import textwrap

import pytest

GRAPH = """\
version: 2
name: orders
nodes:
  src: {type: generate, with: {count: 5, fields: {id: i}}}
  # the pricing step
  priced:
    type: map
    from: {node: src, edge: {durable: true}}
    with: {set: {cents: "id * 100"}}
  out:
    type: "null"
    from: {node: priced, edge: {policy: block}}
"""
# The next commit: the edge policy changes, the durable edge goes, a comment is edited.
CHANGED = (GRAPH.replace("{node: src, edge: {durable: true}}", "src")
           .replace("policy: block", "policy: drop_oldest")
           .replace("# the pricing step", "# prices in cents"))


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "ci@example.com")
    git(tmp_path, "config", "user.name", "ci")
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "orders.yaml").write_text(GRAPH)
    (tmp_path / "graphs" / "same.yaml").write_text(GRAPH.replace("name: orders", "name: same"))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    (tmp_path / "graphs" / "orders.yaml").write_text(CHANGED)
    (tmp_path / "graphs" / "same.yaml").write_text(
        GRAPH.replace("name: orders", "name: same").replace("# the pricing step", "# reworded"))
    git(tmp_path, "commit", "-q", "-am", "second")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_markdown_of_a_commit_shows_the_policy_change_and_the_orphaned_durable_edge(cli, repo, monkeypatch):
    monkeypatch.chdir(repo)
    code, out, err = cli("diff", "--git", "HEAD~1", "graphs/", "--format", "markdown")
    assert (code, err) == (0, "")
    assert out == textwrap.dedent("""\
        <!-- engine diff -->
        ### engine diff

        | graph | file | action | nodes |
        |---|---|---|---|
        | orders | orders.yaml | **updated** | whole graph swapped: durable edge 'src->priced' feeds or leaves \
a changed node |
        | same | same.yaml | **unchanged** |  |

        #### orders — updated

        - nodes: whole graph swapped: durable edge 'src->priced' feeds or leaves a changed node
        - edge priced->out policy: "block" → "drop_oldest"
        - edge src->priced durable: true → (none)
        - durable edge src->priced: its stored events are orphaned (the edge is no longer durable); \
engine state prune would delete orders/src->priced
        - sources that start over from the beginning: src
        """)


def test_default_directory_is_graphs(cli, repo, monkeypatch):
    monkeypatch.chdir(repo)
    code, out, _ = cli("diff", "--git", "HEAD~1")
    assert code == 0
    assert out.startswith("orders (orders.yaml): updated\n")
    assert "same (same.yaml): unchanged\n" in out


def test_a_missing_revision_is_one_line_exit_2(cli, repo, monkeypatch):
    monkeypatch.chdir(repo)
    code, out, err = cli("diff", "--git", "no-such-branch", "graphs/")
    assert (code, out) == (2, "")
    assert err.startswith("engine: error: no-such-branch: no such git revision") and err.count("\n") == 1


def test_a_path_outside_the_repository_is_one_line_exit_2(cli, repo, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(repo)
    outside = tmp_path_factory.mktemp("outside")
    code, out, err = cli("diff", "--git", "HEAD~1", str(outside))
    assert (code, out) == (2, "")
    assert "outside the git repository" in err and err.count("\n") == 1
