"""Driving `engine serve`'s server in-process, on real files, for the reload tests."""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from adapters.serve.host import Host, ReloadResult
from adapters.serve.server import Server
from adapters.storage.durable import durable_factory
from tests.runtime_support import test_registry


def ticking_graph(out: Path, tag: str, rate: int = 400, name: str = "") -> str:
    """A graph that keeps producing `{"v": tag, "n": 0, 1, ...}` into `out` (appending)."""
    named = f"name: {name}\n" if name else ""
    return (f"version: 1\n{named}nodes:\n"
            f"  ticks: {{type: generate, with: {{rate: {rate}, fields: {{v: \"'{tag}'\", n: i}}}}}}\n"
            f"  out: {{type: file.write, from: ticks, with: {{path: {json.dumps(str(out))}, "
            f"format: jsonl, mode: append}}}}\n")


def events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Serving:
    """`async with Serving(dir) as s:` runs the server; `s.until(...)` waits for a state."""

    def __init__(self, directory: Path, drain_timeout_s: float = 5.0, debounce_ms: int = 50,
                 rescan_interval_s: float = 30.0, state_dir: Path | None = None) -> None:
        durable = durable_factory(state_dir) if state_dir is not None else None
        self.host = Host(test_registry(), drain_timeout_s, durable=durable)
        self.server = Server(directory, self.host, debounce_ms, rescan_interval_s)
        self.history: list[list[ReloadResult]] = []
        self.task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> "Serving":
        self.task = asyncio.ensure_future(self.server.run())
        self.watcher = asyncio.ensure_future(self._record())
        await self.until(lambda: self.history, what="the first load")
        await self.watch_is_up()
        return self

    async def watch_is_up(self, timeout: float = 10.0) -> None:
        """Write a hidden probe file until the watch reports a change: from then on a change
        to the directory is seen (watchfiles gives no signal of its own once it watches).
        Scans skip hidden names, so the probe never becomes a graph or a reload."""
        probe = self.server.directory / ".watch-probe"
        before = self.server.changes_seen
        deadline = time.monotonic() + timeout
        try:
            while self.server.changes_seen == before:
                assert time.monotonic() < deadline, "the watch never reported the probe file"
                probe.write_text(str(time.monotonic()))
                for _ in range(10):  # written again every 0.25 s until a watch reports it
                    await asyncio.sleep(0.025)
                    if self.server.changes_seen != before:
                        break
        finally:
            probe.unlink(missing_ok=True)

    def quiet(self) -> bool:
        """No reload running or wanted (the flag is cleared only under the reload lock); a
        test that must know what applies its change waits for this first."""
        return not self.server.dirty.is_set() and not self.server.lock.locked()

    async def _record(self) -> None:
        while True:
            async with self.server.reloaded:
                await self.server.reloaded.wait()
                self.history.append(list(self.server.last_results))

    async def __aexit__(self, *exc: object) -> None:
        self.server.request_stop()
        assert self.task is not None
        self.left_behind = await asyncio.wait_for(self.task, 30)
        self.watcher.cancel()

    def results(self, file: str) -> list[str]:
        return [r.result for batch in self.history for r in batch if r.file == file]

    def running(self, file: str):  # type: ignore[no-untyped-def]
        return self.host.graphs.get(file)

    async def until(self, condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}; history: "
                                     f"{[[r.to_dict() for r in b] for b in self.history]}")
            await asyncio.sleep(0.02)


def write_atomically(path: Path, text: str) -> None:
    """How editors and `kubectl cp`-style tools save: a temp file renamed over the target."""
    temp = path.parent / f".{path.name}.tmp"
    temp.write_text(text)
    temp.replace(path)
