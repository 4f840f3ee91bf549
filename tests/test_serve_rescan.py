"""`engine serve`'s periodic re-scan: the safety net under the directory watch."""

import asyncio
import threading

from adapters.serve import server as server_module
from adapters.serve.vocabulary import ADDED, UPDATED
from tests.serve_support import Serving, events, ticking_graph, write_atomically

RESCAN_S = 0.5


def test_a_periodic_rescan_catches_a_change_the_watch_missed(tmp_path, monkeypatch):
    """While the watch is deaf (its reports lost: a network filesystem without events, a
    watcher restarting), a changed graph file is still applied, by the next re-scan."""
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))
    deaf = threading.Event()
    real_awatch = server_module.watchfiles.awatch

    async def lossy_awatch(*args, **kwargs):  # type: ignore[no-untyped-def]
        async for changes in real_awatch(*args, **kwargs):
            if not deaf.is_set():
                yield changes

    monkeypatch.setattr(server_module.watchfiles, "awatch", lossy_awatch)

    async def scenario() -> None:
        async with Serving(graphs, rescan_interval_s=RESCAN_S) as s:  # the watch is up: it saw a probe
            deaf.set()
            await s.until(s.quiet, what="the probe's reload to end")  # or it would see the change
            reported = s.server.changes_seen
            write_atomically(graphs / "g.yaml", ticking_graph(out, "B"))
            await s.until(lambda: s.results("g.yaml") == [ADDED, UPDATED], timeout=20 * RESCAN_S,
                          what="the re-scan to apply the change")
            await s.until(lambda: any(e["v"] == "B" for e in events(out)), what="the new version's events")
            assert s.server.changes_seen == reported  # no watch report: the re-scan found it

    asyncio.run(scenario())
