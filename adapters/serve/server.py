"""The serve loop: an initial load, then one reload per batch of directory changes.

Three things ask for a reload, and none of them is trusted to say what changed (every
reload re-scans): watchfiles on the directory (debounced), a periodic re-scan as a safety
net, and SIGHUP. The watch is on the directory path the user gave, resolved afresh each
time it starts; a cheap identity check (real path and inode, a few times a second) notices
a flipped git-sync link or a directory removed and recreated, and restarts the watch. A
missing directory keeps what runs (a deploy may recreate it) and is reported once.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Final

import watchfiles

from adapters.serve.host import Host, ReloadResult
from adapters.serve.scan import Snapshot, identity, scan
from adapters.storage.durable import maintain
from adapters.trust.gate import TrustGate

LOG: Final = logging.getLogger("headrace")
IDENTITY_CHECK_S: Final = 0.25


class Server:
    def __init__(self, directory: Path, host: Host, debounce_ms: int, rescan_interval_s: float) -> None:
        self.directory = directory
        self.host = host
        self.debounce_ms = debounce_ms
        self.rescan_interval_s = rescan_interval_s
        self.dirty = asyncio.Event()  # a reload is wanted
        self.stopping = asyncio.Event()
        self.restart_watch = asyncio.Event()
        self.reloaded = asyncio.Condition()  # notified after every reload (tests wait on it)
        self.last_results: list[ReloadResult] = []
        self.missing_reported = False
        self.applied: Snapshot | None = None  # what the last reload saw
        self.forced = True  # the next reload logs every graph even if nothing changed
        self.lock = asyncio.Lock()  # one reload at a time (the loop, SIGHUP, the control plane)
        self.changes_seen = 0  # batches of changes the watch reported (a test's probe: the watch is up)
        self.gate: TrustGate | None = None  # with `trusted_keys`: each state is verified before it is applied
        self.applied_seal: dict[str, bytes] = {}  # the signature files the last reload saw

    def request_reload(self) -> None:
        """SIGHUP: re-scan now and report every graph, changed or not."""
        self.forced = True
        self.dirty.set()

    def request_stop(self) -> None:
        self.stopping.set()
        self.restart_watch.set()
        self.dirty.set()

    async def run(self) -> int:
        """Serve until `request_stop`; returns the events left behind by the final drain."""
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(self._watch()), asyncio.ensure_future(self._check_identity()),
                 asyncio.ensure_future(self._rescan_periodically())]
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            await self._reload()
            while not self.stopping.is_set():
                await self.dirty.wait()
                if self.stopping.is_set():
                    break
                await self._reload()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            self.stopping.set()
            self.restart_watch.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return await self.host.stop_all()

    async def reload_now(self, restart_stopped: bool = True,
                         change: Callable[[], None] | None = None) -> list[ReloadResult] | None:
        """A reload on request (the control plane): every graph reported, and drained graphs
        restarted unless `restart_stopped` is False; None when the directory is missing.
        `change` (writing or deleting a graph file) runs under the reload lock first, so no
        watch reload comes between and the results compare with what ran before it. An
        OSError from it propagates, with nothing reloaded."""
        async with self.lock:
            if change is not None:
                await asyncio.to_thread(change)  # it syncs to disk: off the loop the graphs run on
            if not await self._reload_locked(restart_stopped, forced=True):
                return None
            return self.last_results

    async def _reload(self) -> bool:
        async with self.lock:
            return await self._reload_locked(False, False)

    async def _reload_locked(self, restart_stopped: bool, forced: bool) -> bool:
        # `forced` comes with the call, not through `self.forced` (kept for SIGHUP): a flag set
        # before waiting for the lock would be taken by a watch reload already holding it,
        # which would apply its older snapshot without `restart_stopped`.
        self.dirty.clear()
        snapshot = await asyncio.to_thread(scan, self.directory)
        if snapshot is None:
            if not self.missing_reported:
                LOG.warning(f"the directory {self.directory} is missing; the {len(self.host.graphs)} running "
                            "graphs keep running until it is back")
                self.missing_reported = True
            return False
        self.missing_reported = False
        forced = forced or self.forced
        seal = await asyncio.to_thread(self.gate.seal, snapshot) if self.gate is not None else {}
        if snapshot == self.applied and seal == self.applied_seal and not forced:
            return True  # a watch event or a periodic scan with nothing new: no reload
        self.forced = False
        self.applied, self.applied_seal = snapshot, seal
        refused = await self._refused(snapshot, seal)
        results = refused if refused is not None else await self.host.apply(snapshot, restart_stopped)
        async with self.reloaded:
            self.last_results = results
            self.reloaded.notify_all()
        return True

    async def _refused(self, snapshot: Snapshot, seal: dict[str, bytes]) -> list[ReloadResult] | None:
        """With `trusted_keys`: the results of a refused state (what runs keeps running), or
        None when the state is signed by a trusted key and may be applied."""
        if self.gate is None:
            return None
        verdict = await asyncio.to_thread(self.gate.verify, snapshot, seal)  # parses every file: off the loop
        return self.gate.admit(snapshot, verdict)

    async def _watch(self) -> None:
        while not self.stopping.is_set():
            self.restart_watch.clear()
            if identity(self.directory) is None:
                await self._sleep(IDENTITY_CHECK_S)
                continue
            try:
                async for _ in watchfiles.awatch(
                        self.directory.resolve(), watch_filter=None, debounce=max(self.debounce_ms, 1), step=50,
                        stop_event=self.restart_watch, recursive=True, ignore_permission_denied=True):
                    self.changes_seen += 1
                    self.dirty.set()
            except (OSError, RuntimeError) as exc:  # the directory vanished under the watcher
                LOG.debug(f"watch of {self.directory} ended: {exc}")
            self.dirty.set()  # whatever happened while no watch ran is picked up by a scan
            await self._sleep(IDENTITY_CHECK_S)

    async def _check_identity(self) -> None:
        seen = identity(self.directory)
        while not self.stopping.is_set():
            await self._sleep(IDENTITY_CHECK_S)
            now = identity(self.directory)
            if now != seen:
                seen = now
                self.restart_watch.set()
                self.dirty.set()

    async def _rescan_periodically(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.rescan_interval_s)
            self.dirty.set()
            cleared = maintain()
            if cleared:
                LOG.info(f"cleared {cleared} LMDB reader slots left by crashed processes")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
