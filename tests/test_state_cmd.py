"""`engine state ls` and `engine state prune`: durable edges a removed graph left behind."""

import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT


def engine(cwd, *args):  # type: ignore[no-untyped-def]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"),
               ORDERS_CSV=str(ROOT / "graphs/data/orders.csv"), DURABLE_OUT=str(cwd / "out.jsonl"))
    return subprocess.run([sys.executable, "-m", "adapters.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_ls_lists_durable_edges_and_prune_deletes_only_undeclared_ones_after_listing(tmp_path):
    (tmp_path / "graphs").mkdir()
    shutil.copy(ROOT / "graphs/durable_orders.yaml", tmp_path / "graphs")
    assert engine(tmp_path, "run", "graphs/durable_orders.yaml").returncode == 0
    listed = engine(tmp_path, "state", "ls").stdout.splitlines()
    assert [line.split()[:2] for line in listed[1:]] == [
        ["durable_orders", "once->out"], ["durable_orders", "priced->once"], ["durable_orders", "raw->priced"]]
    nothing = engine(tmp_path, "state", "prune", "graphs")
    assert nothing.stdout == "nothing to prune: every durable edge belongs to a graph in graphs\n"
    (tmp_path / "graphs/durable_orders.yaml").unlink()
    dry = engine(tmp_path, "state", "prune", "graphs")
    assert dry.stdout.splitlines()[0] == "would delete durable_orders/once->out (0 events)"
    assert len(engine(tmp_path, "state", "ls").stdout.splitlines()) == 4  # listing deletes nothing
    assert engine(tmp_path, "state", "prune", "graphs", "--yes").returncode == 0
    assert engine(tmp_path, "state", "ls").stdout.splitlines()[1:] == []
    # Pruned with its saved position: the graph, back, reads its input again from the start.
    shutil.copy(ROOT / "graphs/durable_orders.yaml", tmp_path / "graphs")
    assert engine(tmp_path, "run", "graphs/durable_orders.yaml").returncode == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 12


def test_prune_refuses_while_graph_files_are_invalid(tmp_path):
    (tmp_path / "graphs").mkdir()
    shutil.copy(ROOT / "graphs/durable_orders.yaml", tmp_path / "graphs")
    assert engine(tmp_path, "run", "graphs/durable_orders.yaml").returncode == 0
    (tmp_path / "graphs/broken.yaml").write_text("version: 1\nnodes: {x: {type: nope}}\n")
    refused = engine(tmp_path, "state", "prune", "graphs", "--yes")
    assert refused.returncode == 1 and "has invalid graph files" in refused.stderr
    assert len(engine(tmp_path, "state", "ls").stdout.splitlines()) == 4
