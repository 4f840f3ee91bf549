"""`engine serve`: reloads on real files, asserting on the events the graphs write."""

import asyncio
import os
import shutil
import signal
import subprocess

from adapters.serve.vocabulary import ADDED, REJECTED, REMOVED, UNCHANGED, UPDATED
from tests.serve_support import Serving, events, ticking_graph, write_atomically


def contiguous(tagged: list[dict[str, object]]) -> bool:
    return [e["n"] for e in tagged] == list(range(len(tagged)))


def tagged(path, tag):  # type: ignore[no-untyped-def]
    return [e for e in events(path) if e["v"] == tag]


def test_serves_every_graph_file_and_skips_hidden_and_other_files(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "A"))
    (graphs / "b.yml").write_text(ticking_graph(tmp_path / "b.jsonl", "B"))
    (graphs / ".a.yaml.swp").write_text("not: [a graph")
    (graphs / "notes.txt").write_text("hello")
    (graphs / "broken.yaml").write_text("version: 1\nnodes:\n  x: {type: nope}\n")

    async def scenario():
        async with Serving(graphs) as s:
            assert sorted(s.host.graphs) == ["a.yaml", "b.yml"]
            assert s.results("broken.yaml") == [REJECTED]
            assert "unknown node type 'nope'" in " ".join(s.host.status["broken.yaml"].problems)
            await s.until(lambda: len(events(tmp_path / "a.jsonl")) > 20 and len(events(tmp_path / "b.jsonl")) > 20)
        return s

    s = asyncio.run(scenario())
    # SIGTERM-style stop drains: every generated event reached the file, in order.
    assert contiguous(events(tmp_path / "a.jsonl")) and contiguous(events(tmp_path / "b.jsonl"))
    assert s.left_behind == 0


def test_atomic_save_swaps_the_graph_without_losing_an_event(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))

    async def scenario():
        async with Serving(graphs) as s:
            await s.until(lambda: len(events(out)) > 30)
            old = s.running("g.yaml")
            write_atomically(graphs / "g.yaml", ticking_graph(out, "B"))
            await s.until(lambda: s.results("g.yaml") == [ADDED, UPDATED], what="the swap")
            await s.until(lambda: len(tagged(out, "B")) > 10)
            generated_by_old = old.runtime.stats()["nodes"]["ticks"]["out"]
            return generated_by_old

    generated_by_old = asyncio.run(scenario())
    old_events = tagged(events_path := out, "A")
    assert contiguous(old_events) and len(old_events) == generated_by_old  # drained, none lost
    assert contiguous(tagged(events_path, "B"))
    # The old version's events all come before the new one's: drained, then started.
    tags = [e["v"] for e in events(out)]
    assert tags == sorted(tags)


def test_vim_save_is_one_change(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))

    async def scenario():
        async with Serving(graphs) as s:
            # vim's default save: move the original aside, write the new file, delete the backup.
            os.rename(graphs / "g.yaml", graphs / "g.yaml~")
            (graphs / "g.yaml").write_text(ticking_graph(out, "B"))
            os.remove(graphs / "g.yaml~")
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED] and len(s.results("g.yaml")) == 2)
            await asyncio.sleep(0.3)
            assert s.results("g.yaml") == [ADDED, UPDATED]  # never removed in between
            await s.until(lambda: tagged(out, "B"))

    asyncio.run(scenario())


def test_a_half_written_file_is_rejected_then_updated_and_the_old_version_keeps_running(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))
    new = ticking_graph(out, "B")

    async def scenario():
        async with Serving(graphs) as s:
            old = s.running("g.yaml")
            with open(graphs / "g.yaml", "w") as f:  # a slow in-place write, caught halfway
                f.write(new[: len(new) // 2])
            await s.until(lambda: s.results("g.yaml")[-1:] == [REJECTED], what="the rejection")
            before = len(tagged(out, "A"))
            await asyncio.sleep(0.3)
            assert s.running("g.yaml") is old and len(tagged(out, "A")) > before  # still running
            assert s.host.status["g.yaml"].problems  # with its problems, for the control plane
            with open(graphs / "g.yaml", "a") as f:
                f.write(new[len(new) // 2:])
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED])
            await s.until(lambda: tagged(out, "B"))

    asyncio.run(scenario())
    assert contiguous(tagged(out, "A"))


def test_unchanged_graphs_are_not_restarted_and_a_deleted_file_is_drained(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "keep.yaml").write_text(ticking_graph(tmp_path / "keep.jsonl", "K"))
    (graphs / "edit.yaml").write_text(ticking_graph(tmp_path / "edit.jsonl", "A"))
    (graphs / "gone.yaml").write_text(ticking_graph(tmp_path / "gone.jsonl", "G"))

    async def scenario():
        async with Serving(graphs) as s:
            kept = s.running("keep.yaml")
            write_atomically(graphs / "edit.yaml", ticking_graph(tmp_path / "edit.jsonl", "B"))
            (graphs / "gone.yaml").unlink()
            await s.until(lambda: s.results("gone.yaml") == [ADDED, REMOVED])
            await s.until(lambda: s.results("edit.yaml") == [ADDED, UPDATED])
            assert s.running("keep.yaml") is kept and kept.state == "running"
            # Every reload reports every graph; this one was never touched.
            reported = s.results("keep.yaml")
            assert reported[0] == ADDED and set(reported[1:]) == {UNCHANGED}
            os.kill(os.getpid(), signal.SIGHUP)  # SIGHUP: a reload even though nothing changed
            await s.until(lambda: len(s.results("keep.yaml")) == len(reported) + 1)
            assert s.results("keep.yaml")[-1] == UNCHANGED
            assert s.running("keep.yaml") is kept
            gone = len(events(tmp_path / "gone.jsonl"))
            await asyncio.sleep(0.2)
            assert len(events(tmp_path / "gone.jsonl")) == gone  # stopped for good

    asyncio.run(scenario())
    assert contiguous(events(tmp_path / "keep.jsonl")) and contiguous(events(tmp_path / "gone.jsonl"))


def _git(cwd, *args):  # type: ignore[no-untyped-def]
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


def test_git_checkout_of_many_files_is_one_reload_with_no_mixed_revisions(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    _git(graphs, "init", "-q", "-b", "main")
    names = [f"g{k:02d}.yaml" for k in range(20)]
    for tag in ("A", "B"):
        for k, name in enumerate(names):
            (graphs / name).write_text(ticking_graph(tmp_path / f"{k}.jsonl", tag, rate=50))
        _git(graphs, "add", ".")
        _git(graphs, "commit", "-q", "-m", tag)
        if tag == "A":
            _git(graphs, "branch", "a")

    async def scenario():
        _git(graphs, "checkout", "-q", "a")
        async with Serving(graphs) as s:
            first = len(s.history)
            _git(graphs, "checkout", "-q", "main")
            await s.until(lambda: all(s.results(n)[-1:] == [UPDATED] and len(s.results(n)) == 2 for n in names),
                          what="every file updated")
            changed = [b for b in s.history[first:] if any(r.result == UPDATED for r in b)]
            assert len(changed) == 1 and len(changed[0]) == 20  # one reload, all files together

    asyncio.run(scenario())


def _configmap(root, revision, text):  # type: ignore[no-untyped-def]
    """What the kubelet does: a new timestamped dir, `..data` swapped by rename, old dir removed."""
    new = root / f"..2026_11_21_{revision:04d}"
    new.mkdir()
    (new / "g.yaml").write_text(text)
    old = os.readlink(root / "..data") if (root / "..data").is_symlink() else None
    os.symlink(new.name, root / "..data_tmp")
    os.rename(root / "..data_tmp", root / "..data")
    if not (root / "g.yaml").is_symlink():
        os.symlink("..data/g.yaml", root / "g.yaml")
    if old is not None:
        shutil.rmtree(root / old)


def test_configmap_symlink_swaps_repeated_many_times(tmp_path):
    root, out = tmp_path / "config", tmp_path / "out.jsonl"
    root.mkdir()
    _configmap(root, 0, ticking_graph(out, "T0"))

    async def scenario():
        async with Serving(root) as s:
            for revision in range(1, 8):
                _configmap(root, revision, ticking_graph(out, f"T{revision}"))
                await s.until(lambda r=revision: len(s.results("g.yaml")) == r + 1, what=f"revision {revision}")
                await s.until(lambda r=revision: tagged(out, f"T{r}"))
            assert s.results("g.yaml") == [ADDED] + [UPDATED] * 7
            assert sorted(os.listdir(root)) == ["..2026_11_21_0007", "..data", "g.yaml"]

    asyncio.run(scenario())


def test_git_sync_link_flips_and_a_recreated_directory(tmp_path):
    out = tmp_path / "out.jsonl"
    link = tmp_path / "link"

    def publish(revision):  # type: ignore[no-untyped-def]
        worktree = tmp_path / f"rev{revision}"
        worktree.mkdir()
        (worktree / "g.yaml").write_text(ticking_graph(out, f"R{revision}"))
        os.symlink(worktree.name, tmp_path / "link.tmp")
        os.rename(tmp_path / "link.tmp", link)
        if revision > 0:
            shutil.rmtree(tmp_path / f"rev{revision - 1}")

    publish(0)

    async def scenario():
        async with Serving(link) as s:
            for revision in range(1, 4):
                publish(revision)
                await s.until(lambda r=revision: len(s.results("g.yaml")) == r + 1, what=f"flip {revision}")
                await s.until(lambda r=revision: tagged(out, f"R{r}"))
            # The directory itself removed: what runs keeps running; recreated: picked up again.
            running = s.running("g.yaml")
            shutil.rmtree(tmp_path / "rev3")
            await asyncio.sleep(0.6)
            assert s.running("g.yaml") is running and running.state == "running"
            (tmp_path / "rev3").mkdir()
            (tmp_path / "rev3" / "g.yaml").write_text(ticking_graph(out, "R4"))
            await s.until(lambda: tagged(out, "R4"), what="the recreated directory")

    asyncio.run(scenario())


def test_a_drain_that_times_out_reports_what_it_dropped(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    slow = ("version: 1\nnodes:\n"
            "  fast: {type: generate, with: {count: 1000000, fields: {n: i}}}\n"
            "  slow: {type: test.slow, from: {node: fast, capacity: 200000}, with: {per_pass: 1}}\n"
            "  sink: {type: test.slow_record, from: slow}\n")
    (graphs / "g.yaml").write_text(slow)

    async def scenario():
        async with Serving(graphs, drain_timeout_s=0.02) as s:
            write_atomically(graphs / "g.yaml", slow.replace("1000000", "1000001"))
            await s.until(lambda: len(s.results("g.yaml")) == 2)
            swap = [r for b in s.history for r in b if r.file == "g.yaml"][-1]
            assert swap.result == UPDATED and swap.dropped > 0

    asyncio.run(scenario())


def test_a_graph_that_cannot_be_built_is_rejected_and_the_old_version_keeps_running(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))

    async def scenario():
        async with Serving(graphs) as s:
            old = s.running("g.yaml")
            unbuildable = ticking_graph(out, "B") + "  extra: {type: test.unbuildable, from: ticks}\n"
            write_atomically(graphs / "g.yaml", unbuildable)
            await s.until(lambda: s.results("g.yaml")[-1:] == [REJECTED])
            assert s.host.status["g.yaml"].problems == [
                "node 'extra': type 'test.unbuildable' cannot run in this engine"]
            before = len(events(out))
            await asyncio.sleep(0.2)
            assert s.running("g.yaml") is old and len(events(out)) > before

    asyncio.run(scenario())
    assert {e["v"] for e in events(out)} == {"A"} and contiguous(events(out))


def test_a_newcomer_cannot_take_the_name_of_a_running_graph(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "quickstart.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "A", name="orders"))

    async def scenario():
        async with Serving(graphs) as s:
            # Sorted first, but the name is taken: the running graph keeps it.
            (graphs / "a_copy.yaml").write_text(ticking_graph(tmp_path / "b.jsonl", "B", name="orders"))
            await s.until(lambda: s.results("a_copy.yaml") == [REJECTED])
            assert "already used by quickstart.yaml" in s.host.status["a_copy.yaml"].problems[0]
            assert s.results("quickstart.yaml")[-1] == UNCHANGED

    asyncio.run(scenario())


def test_a_swapped_graph_keeps_what_its_unchanged_durable_edge_holds(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    durable = ("version: 1\ndefaults:\n  edge: {storage: lmdb}\nnodes:\n"
               "  fast: {type: generate, with: {count: 20000, fields: {n: i}}}\n"
               "  slow: {type: test.slow, from: {node: fast, storage: lmdb, capacity: 50000}, with: {per_pass: 2}}\n"
               "  out: {type: file.write, from: slow, with: {path: " + str(out) + ", format: jsonl, mode: append}}\n")
    (graphs / "g.yaml").write_text(durable)

    async def scenario():
        async with Serving(graphs, drain_timeout_s=0.05, state_dir=tmp_path / "state") as s:
            await s.until(lambda: len(events(out)) > 100)
            # A new version of the consumer side; the durable edge itself is unchanged.
            write_atomically(graphs / "g.yaml", durable.replace("per_pass: 2", "per_pass: 50"))
            await s.until(lambda: len(s.results("g.yaml")) == 2)
            swap = [r for b in s.history for r in b if r.file == "g.yaml"][-1]
            assert swap.result == UPDATED and swap.dropped == 0  # what the edge held is kept, not dropped
            assert swap.nodes is not None
            assert swap.nodes.whole_swap == "durable edge 'fast->slow' feeds or leaves a changed node"
            await s.until(lambda: len({e["n"] for e in events(out)}) == 20000, timeout=30, what="every event")

    asyncio.run(scenario())
    got = [e["n"] for e in events(out)]
    assert set(got) == set(range(20000))
    assert len(got) - 20000 <= 1024  # at most the batch in flight at the swap comes twice


def test_a_corrupt_state_file_rejects_only_the_durable_graph(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "plain.jsonl"
    graphs.mkdir()
    (tmp_path / "state" / "edges").mkdir(parents=True)
    (tmp_path / "state" / "edges" / "data.mdb").write_bytes(b"this is not an LMDB file" * 1000)
    (graphs / "plain.yaml").write_text(ticking_graph(out, "P"))
    (graphs / "durable.yaml").write_text(
        "version: 1\nnodes:\n  g: {type: generate, with: {count: 10, fields: {n: i}}}\n"
        "  o: {type: \"null\", from: {node: g, storage: lmdb}}\n")

    async def scenario():
        async with Serving(graphs, state_dir=tmp_path / "state") as s:
            assert s.results("durable.yaml") == [REJECTED] and s.running("durable.yaml") is None
            problem = s.host.status["durable.yaml"].problems[0]
            assert "state/edges" in problem and "move it aside" in problem
            before = len(events(out))
            await asyncio.sleep(0.2)
            assert s.running("plain.yaml").state == "running" and len(events(out)) > before

    asyncio.run(scenario())
