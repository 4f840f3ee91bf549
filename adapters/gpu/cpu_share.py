"""Sharing a batch's chunks out among the CPUs this process may use (the NumPy backend).

NumPy releases the GIL inside each operation, so threads that each run their own chunks
of a batch use the cores a single NumPy call leaves idle. How many CPUs the process may use
is its affinity mask, lowered by a CPU quota of its cgroup or any cgroup above it (v2
`cpu.max`, v1 `cpu.cfs_quota_us`): a container's `cpus`, a Kubernetes CPU limit, a systemd
`CPUQuota`.
"""

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Final

MAX_THREADS: Final = 8  # past this, memory bandwidth, not cores, bounds a chain
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
PROC_CGROUP: Final = Path("/proc/self/cgroup")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def share_out(run_span: Callable[[int, int], None], n: int, chunk: int, threads: int) -> None:
    """Call run_span over [0, n) in contiguous spans of whole chunks, one per thread (0:
    usable_cpus()); this thread takes the first span, so one span needs no pool. Returns
    when every span has finished; raises this thread's error, else the first other one."""
    chunks = -(-n // chunk)
    if chunks > 1 and threads == 0:
        threads = usable_cpus()
    parts = max(1, min(threads, chunks, MAX_THREADS))
    per = max(1, -(-chunks // parts)) * chunk
    spans = [(lo, min(lo + per, n)) for lo in range(0, n, per)] or [(0, 0)]
    others: list[Future[None]] = [_thread_pool().submit(run_span, lo, hi) for lo, hi in spans[1:]]
    try:
        run_span(*spans[0])
    finally:
        wait(others)  # no span may go on writing into arrays the caller is done with
    for future in others:
        future.result()


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_THREADS - 1, thread_name_prefix="headrace-numpy")
        return _pool


def _forget_pool() -> None:
    """A forked child has none of its parent's threads: it starts its own pool."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def usable_cpus() -> int:
    """The CPUs this process may use (at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota)) if quota is not None else cpus)


def cgroup_cpu_quota() -> float | None:
    """The tightest CPU quota, in CPUs, on this process's cgroup and those above it; None
    without one (or off Linux)."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # cgroup v2: "0::/path"
            quotas += _walk_up(CGROUP_ROOT, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            quotas += _walk_up(CGROUP_ROOT / controllers, path, _v1_quota)
    return min(quotas) if quotas else None


def _walk_up(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas from the process's cgroup directory up to the mount (inside a container
    the process's path often is not there: the namespace's root is the mount itself)."""
    found: list[float] = []
    parts = [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        directory = mount.joinpath(*parts[:depth])
        if directory.is_dir():
            quota = read(directory)
            if quota is not None:
                found.append(quota)
    return found


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None  # -1: no quota
