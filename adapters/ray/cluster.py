"""Joining or starting the Ray cluster the `ray` executor runs actors on."""

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Final

EXTRA: Final = "ray"
LOG = logging.getLogger("headrace.ray")
PROBE_TIMEOUT_S: Final = 5.0  # a head node that does not accept a connection by then is down


class ClusterError(Exception):
    """The cluster cannot be reached or started: one line saying where and what to do."""


@dataclass(frozen=True)
class RayOptions:
    # None: start a local Ray with every core of this machine; `auto` or `ray://host:port`
    # (or `host:port` of a head node) joins an existing cluster.
    address: str | None = None
    # CPUs each instance reserves in Ray's accounting (where it is placed); fractions share a core.
    cpus_per_instance: float = 1.0
    # Local Ray only: how many CPUs it offers (None: all of this machine's).
    num_cpus: int | None = None


def ray_module() -> Any:
    """The `ray` module, or one clear line naming the extra that provides it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"the ray executor needs Ray, which is not installed: install it with "
                           f"`pip install 'headrace[{EXTRA}]'` (or run with --executor local)") from None
    return ray


def connect(options: RayOptions) -> Any:
    """Initialise Ray in this process once (a second call is a no-op); ClusterError when
    the cluster cannot be reached."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    # Ray's own chatter stays out of the engine's log unless something fails.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, object] = {"include_dashboard": False, "configure_logging": False,
                                 "log_to_driver": True, "ignore_reinit_error": True}
    where = options.address or "a local Ray"
    if options.address:
        _probe(options.address)
        kwargs["address"] = options.address
    else:
        # A new Ray of this machine's own, as documented: `ray.init()` with no address would
        # join a cluster some other `ray start` left running here.
        kwargs["address"] = "local"
        if options.num_cpus is not None:
            kwargs["num_cpus"] = options.num_cpus
    # `ray.init` sets this process's SIGTERM handler to its own (exit at once, status 15):
    # the engine's own handler (a graceful drain: engine serve, engine run) is put back.
    previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, TimeoutError, ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {where}: {detail[:300]} "
                           "(check `ray_address` / --ray-address, and that the head node runs "
                           "`ray start --head`)") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return ray


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _probe(address: str) -> None:
    """Fail fast on a `host:port` nothing listens on: `ray.init` would retry it for minutes
    and print Ray's own warnings meanwhile. `auto` is left to Ray (it reads the address file)."""
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (check "
                           "`ray_address` / --ray-address, and that the head node runs `ray start --head`)") from None
