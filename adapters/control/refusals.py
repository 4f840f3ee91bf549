"""Refused control calls in the audit log, bounded so that a flood cannot fill the disk.

A call refused before it reaches the service (no token, a wrong token, no client certificate)
is written as its own audit record, in the same hash chain as accepted calls:
`{"principal": "anonymous@<peer>", "peer", "method", "target": "", "result": "unauthenticated",
"detail": <reason>}`. The credential is never written: the interceptor passes only why it
refused, never what the caller sent.

Writing is limited per window (`window_s`, fixed windows one after the other): at most
`per_peer` records per peer host (the port left out: each new connection has its own) and
reason, and at most `per_window` in all. What goes over is counted, and written when the
window ends as one summary record per peer and reason (`"count": N`, detail "N more refused
attempts from HOST (REASON) in the last T s"), at most `summaries` of them (the largest);
the rest as one record for all other peers. A window thus writes at most
`per_window + summaries + 1` lines, however many calls are refused.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from adapters.control.audit import AuditLog

LOG: Final = logging.getLogger("headrace.control")

UNAUTHENTICATED: Final = "unauthenticated"
SUMMARY_METHOD: Final = "*"
CONTROL_PREFIX: Final = "/headrace.control.v1.Control/"
METHOD_LIMIT: Final = 120  # the method path is the caller's to choose: keep a bounded part of it
MAX_PEERS: Final = 10_000  # peers and reasons counted one by one in a window; beyond that, together

WINDOW_S: Final = 60.0
PER_PEER: Final = 5
PER_WINDOW: Final = 20
SUMMARIES: Final = 10


def method_name(method: str) -> str:
    """`Pause` for the Control service's methods (as accepted calls are written), else the
    path as called, cut to METHOD_LIMIT characters."""
    if method.startswith(CONTROL_PREFIX) and "/" not in method[len(CONTROL_PREFIX):]:
        method = method[len(CONTROL_PREFIX):]
    return method if len(method) <= METHOD_LIMIT else method[:METHOD_LIMIT] + "…"


def peer_host(peer: str) -> str:
    """`ipv4:10.0.0.7` for `ipv4:10.0.0.7:53122`, `ipv6:[::1]` for `ipv6:[::1]:40000`; other
    peers (`unix:...`) as they are."""
    kind, _, address = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in address:
        return peer
    host, _, port = address.rpartition(":")
    return f"{kind}:{host}" if port.isdigit() else peer


@dataclass
class _Peer:
    written: int = 0
    over: int = 0


class RefusedAttempts:
    """Writes refused calls to `log` within the limits above. `flush` ends the window when it
    is over (call it at least every `seconds_left()`), `close` ends it now. `clock` is
    monotonic seconds (a parameter for tests)."""

    def __init__(self, log: AuditLog, window_s: float = WINDOW_S, per_peer: int = PER_PEER,
                 per_window: int = PER_WINDOW, summaries: int = SUMMARIES, max_peers: int = MAX_PEERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.window_s = window_s
        self.per_peer = per_peer
        self.per_window = per_window
        self.summaries = summaries
        self.max_peers = max_peers
        self._clock = clock
        self._start = clock()
        self._written = 0
        self._peers: dict[tuple[str, str], _Peer] = {}
        self._uncounted = 0  # refusals from peers past `max_peers` in this window

    def refused(self, principal: str, peer: str, method: str, reason: str) -> None:
        """One refused call: written, or counted for the window's summary."""
        self.flush()
        key = (peer_host(peer), reason)
        state = self._peers.get(key)
        if state is None:
            if len(self._peers) >= self.max_peers:
                self._uncounted += 1
                return
            state = self._peers[key] = _Peer()
        if state.written >= self.per_peer or self._written >= self.per_window:
            state.over += 1
            return
        state.written += 1
        self._written += 1
        self._write(principal, method_name(method), reason, peer=peer)

    def seconds_left(self) -> float:
        """Until the current window ends."""
        return max(0.0, self._start + self.window_s - self._clock())

    def flush(self) -> None:
        """End the window if it is over: write its summaries, start the next one."""
        if self._clock() >= self._start + self.window_s:
            self.close()

    def close(self) -> None:
        """End the window now: write its summaries, start the next one."""
        now = self._clock()
        seconds = max(1, round(now - self._start))
        over = sorted(((state.over, key) for key, state in self._peers.items() if state.over),
                      key=lambda item: (-item[0], item[1]))
        for count, (host, reason) in over[:self.summaries]:
            self._write("anonymous", SUMMARY_METHOD, f"{count} more refused attempts from {host} ({reason}) "
                        f"in the last {seconds} s", peer=host, count=count)
        rest = sum(count for count, _ in over[self.summaries:]) + self._uncounted
        if rest:
            peers = len(over) - min(len(over), self.summaries)
            others = f"{peers} other peers" + (" and more" if self._uncounted else "")
            self._write("anonymous", SUMMARY_METHOD, f"{rest} more refused attempts from {others} "
                        f"in the last {seconds} s", count=rest)
        self._start, self._written, self._uncounted = now, 0, 0
        self._peers = {}

    def _write(self, principal: str, method: str, detail: str, peer: str = "", count: int = 0) -> None:
        try:
            self.log.record(principal, method, "", UNAUTHENTICATED, detail, peer=peer, count=count)
        except OSError as exc:
            LOG.warning("cannot write a refused control call to the audit log %s: %s",
                        self.log.path, exc.strerror or exc)
