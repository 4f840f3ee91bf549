"""State of the `aggregate` node: the accumulators of its fields, and window bookkeeping
(which windows an event falls in, and which are closed by a given time).

Times are epoch seconds (floats). Tumbling and sliding windows are aligned to whole
multiples of their step counted from the epoch, in milliseconds, so their bounds are exact
(`start_ms / 1000`). Sessions are per key and grow with their events; they are bounded by
event times as given. A closed window leaves the state at once: what is held is only what
can still change.
"""

import heapq
import math
from typing import Any, Final

from engine.functions import describe_error, type_name
from engine.node import EventError

INFINITY: Final = float("inf")

COUNT: Final = 0
SUM: Final = 1
MIN: Final = 2
MAX: Final = 3
AVG: Final = 4
FIRST: Final = 5
LAST: Final = 6
COLLECT: Final = 7
KINDS: Final[dict[str, int]] = {
    "count": COUNT, "sum": SUM, "min": MIN, "max": MAX, "avg": AVG,
    "first": FIRST, "last": LAST, "collect": COLLECT,
}


class Unset:
    """The state of `first`/`last` before any value (null is a value)."""


UNSET: Final = Unset()


class Mean:
    """`avg` state: the sum and number of the values that were not null."""

    def __init__(self, total: Any, n: int) -> None:
        self.total = total
        self.n = n


def _number(value: object, function: str) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise TypeError(f"{function}() needs numbers, not {type_name(value)}")


def _before(a: Any, b: Any, function: str) -> bool:
    """`a < b` for min (`a > b` for max), with a message in the user's words."""
    try:
        return bool(a < b) if function == "min" else bool(a > b)
    except TypeError:
        raise TypeError(f"{function}() cannot compare {type_name(a)} with {type_name(b)}") from None


class Accumulators:
    """The aggregate functions of a node's fields, over a list of states (one per field).

    Updates are pure (a new list), so an event is checked against every window it goes
    to before any of them changes; only `commit` mutates, and it cannot fail.
    """

    def __init__(self, kinds: list[int], where: list[str]) -> None:
        self.kinds = kinds
        self.where = where  # per field, " in fields.NAME 'SOURCE'" for error messages
        self.collects = [i for i, kind in enumerate(kinds) if kind == COLLECT]

    def fail(self, i: int, exc: Exception) -> EventError:
        return EventError(describe_error(exc) + self.where[i])

    def initial(self) -> list[Any]:
        states: list[Any] = []
        for kind in self.kinds:
            if kind in (COUNT, SUM):
                states.append(0)
            elif kind == AVG:
                states.append(Mean(0, 0))
            elif kind in (FIRST, LAST):
                states.append(UNSET)
            elif kind == COLLECT:
                states.append([])
            else:
                states.append(None)
        return states

    def advance(self, states: list[Any], values: list[object]) -> list[Any]:
        """The states after one more event, as a new list; `collect` lists are shared
        and appended to by `commit`, once nothing can fail any more."""
        kinds = self.kinds
        new = states.copy()
        i = 0
        try:
            while i < len(kinds):
                kind = kinds[i]
                value: Any = values[i]
                if kind == COUNT:
                    new[i] = states[i] + 1
                elif kind == FIRST:
                    if states[i] is UNSET:
                        new[i] = value
                elif kind == LAST:
                    new[i] = value
                elif value is None or kind == COLLECT:
                    pass
                elif kind == SUM:
                    new[i] = states[i] + _number(value, "sum")
                elif kind == AVG:
                    mean: Mean = states[i]
                    new[i] = Mean(mean.total + _number(value, "avg"), mean.n + 1)
                elif states[i] is None or _before(value, states[i], "min" if kind == MIN else "max"):
                    new[i] = value
                i += 1
        except Exception as exc:
            raise self.fail(i, exc) from None
        return new

    def commit(self, states: list[Any], values: list[object]) -> None:
        for i in self.collects:
            collected: list[object] = states[i]
            collected.append(values[i])

    def merge(self, early: list[Any], late: list[Any]) -> list[Any]:
        """Two sessions' states as one: `early` started first."""
        kinds = self.kinds
        out = early.copy()
        i = 0
        try:
            while i < len(kinds):
                kind = kinds[i]
                a: Any = early[i]
                b: Any = late[i]
                if kind in (COUNT, SUM, COLLECT):
                    out[i] = a + b
                elif kind == AVG:
                    out[i] = Mean(a.total + b.total, a.n + b.n)
                elif kind == FIRST:
                    out[i] = b if a is UNSET else a
                elif kind == LAST:
                    out[i] = a if b is UNSET else b
                elif a is None or (b is not None and _before(b, a, "min" if kind == MIN else "max")):
                    out[i] = b
                i += 1
        except Exception as exc:
            raise self.fail(i, exc) from None
        return out

    def results(self, states: list[Any]) -> list[object]:
        out: list[object] = []
        for i, kind in enumerate(self.kinds):
            state: Any = states[i]
            if kind == AVG:
                out.append(state.total / state.n if state.n else None)
            elif state is UNSET:
                out.append(None)
            else:
                out.append(state)
        return out



class Group:
    """One key's aggregate state in one window (or, without windows, overall)."""

    def __init__(self, by_values: list[object], seq: int, states: list[Any]) -> None:
        self.by_values = by_values  # the `by` fields as the group's first event had them
        self.seq = seq  # arrival number of the group's first event: orders keys in a window
        self.states = states  # one accumulator state per aggregate field


# A window ready to emit: (end, start, seq of its first event, the group).
Closed = tuple[float, float, int, Group]


def emission_order(closed: Closed) -> tuple[float, float, int]:
    """Windows are emitted by end, then start, then arrival of their key's first event."""
    return (closed[0], closed[1], closed[2])


class FixedWindows:
    """Tumbling (`every == size`) and sliding windows: window k is
    [k * every, k * every + size) in milliseconds since the epoch, shared by all keys."""

    def __init__(self, size_ms: int, every_ms: int) -> None:
        self.size_ms = size_ms
        self.every_ms = every_ms
        self.panes: dict[int, dict[object, Group]] = {}  # window start (ms) -> key -> group
        self.starts: list[int] = []  # heap of open window starts: the earliest ends first

    def starts_for(self, t: float) -> list[int]:
        """Starts (ms) of every window holding time `t`, the earliest first."""
        every = self.every_ms
        latest = math.floor(t * 1000.0 / every) * every
        # Float rounding may put `t` one step off; the bounds as emitted decide.
        if latest / 1000.0 > t:
            latest -= every
        elif (latest + every) / 1000.0 <= t:
            latest += every
        out: list[int] = []
        start = latest
        while (start + self.size_ms) / 1000.0 > t:
            out.append(start)
            start -= every
        out.reverse()
        return out

    def end_of(self, start_ms: int) -> float:
        return (start_ms + self.size_ms) / 1000.0

    def group(self, start_ms: int, key: object) -> Group | None:
        pane = self.panes.get(start_ms)
        return pane.get(key) if pane is not None else None

    def add(self, start_ms: int, key: object, group: Group) -> None:
        pane = self.panes.get(start_ms)
        if pane is None:
            pane = {}
            self.panes[start_ms] = pane
            heapq.heappush(self.starts, start_ms)
        pane[key] = group

    def next_end(self) -> float:
        return self.end_of(self.starts[0]) if self.starts else INFINITY

    def close(self, limit: float, out: list[Closed]) -> None:
        """Move every window that ends at or before `limit` to `out`."""
        starts = self.starts
        while starts and self.end_of(starts[0]) <= limit:
            start = heapq.heappop(starts)
            self._take(start, out)

    def close_all(self, out: list[Closed]) -> None:
        while self.starts:
            self._take(heapq.heappop(self.starts), out)

    def _take(self, start_ms: int, out: list[Closed]) -> None:
        start = start_ms / 1000.0
        end = self.end_of(start_ms)
        for group in self.panes.pop(start_ms).values():
            out.append((end, start, group.seq, group))

    def open_windows(self) -> int:
        return len(self.panes)


class Session:
    """One key's session: events less than `gap` apart; it ends `gap` after its last event."""

    def __init__(self, sid: int, key: object, start: float, last: float, gap: float, group: Group) -> None:
        self.sid = sid
        self.key = key
        self.start = start  # the earliest event time
        self.last = last  # the latest event time
        self.end = last + gap
        self.group = group


class SessionWindows:
    def __init__(self, gap_ms: int) -> None:
        self.gap = gap_ms / 1000.0
        self.by_key: dict[object, list[Session]] = {}  # open sessions per key, by start
        self.live: dict[int, Session] = {}
        # (end, session id); an entry goes stale when its session grows or is merged
        # away, and is fixed up lazily when it reaches the top.
        self.ends: list[tuple[float, int]] = []
        self.next_sid = 0

    def overlapping(self, key: object, t: float) -> list[Session]:
        """The open sessions of `key` that an event at `t` joins (more than one: it
        bridges them), by start."""
        sessions = self.by_key.get(key)
        if sessions is None:
            return []
        gap = self.gap
        return [s for s in sessions if s.start - gap < t < s.last + gap]

    def open(self, key: object, t: float, group: Group) -> None:
        session = Session(self.next_sid, key, t, t, self.gap, group)
        self.next_sid += 1
        self.live[session.sid] = session
        heapq.heappush(self.ends, (session.end, session.sid))
        sessions = self.by_key.get(key)
        if sessions is None:
            self.by_key[key] = [session]
            return
        at = len(sessions)
        while at > 0 and sessions[at - 1].start > t:
            at -= 1
        sessions.insert(at, session)

    def extend(self, found: list[Session], t: float, states: list[Any]) -> None:
        """Put an event at `t` into `found` (overlapping, by start): the first session
        absorbs the others and takes `states`, their merged and updated state."""
        keep = found[0]
        for other in found[1:]:
            keep.start = min(keep.start, other.start)
            keep.last = max(keep.last, other.last)
            keep.group.seq = min(keep.group.seq, other.group.seq)
            del self.live[other.sid]
            self.by_key[keep.key].remove(other)
        keep.start = min(keep.start, t)
        keep.last = max(keep.last, t)
        keep.end = keep.last + self.gap
        keep.group.states = states

    def next_end(self) -> float:
        ends = self.ends
        while ends:
            end, sid = ends[0]
            session = self.live.get(sid)
            if session is not None and session.end == end:
                return end
            heapq.heappop(ends)
            if session is not None:
                heapq.heappush(ends, (session.end, sid))
        return INFINITY

    def close(self, limit: float, out: list[Closed]) -> None:
        while self.next_end() <= limit:
            _, sid = heapq.heappop(self.ends)
            self._take(self.live[sid], out)

    def close_all(self, out: list[Closed]) -> None:
        for session in list(self.live.values()):
            self._take(session, out)
        self.ends = []

    def _take(self, session: Session, out: list[Closed]) -> None:
        del self.live[session.sid]
        sessions = self.by_key[session.key]
        sessions.remove(session)
        if not sessions:
            del self.by_key[session.key]
        out.append((session.end, session.start, session.group.seq, session.group))

    def open_windows(self) -> int:
        return len(self.live)
