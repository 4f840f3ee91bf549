"""Per-node error handling: the `on_error` policies and the rate-limited error log."""

import logging
from typing import Final

from engine.node import Batch, Clock, Event, Failures, NodeContext, NodeFailure
from engine.plan import ERRORS_PORT

LOG: Final = logging.getLogger("headrace")
# One line per node per interval at most; the rest are counted and summarised.
LOG_INTERVAL_S: Final = 5.0

DROP: Final = "drop"
DEAD_LETTER: Final = "dead_letter"
STOP: Final = "stop"
RETRY: Final = "retry"


class RateLimitedLog:
    """Logs a node's errors without flooding: the first at once, then at most one line
    per interval with a count of what was suppressed. Never logs payloads."""

    def __init__(self, clock: Clock, interval_s: float = LOG_INTERVAL_S, graph: str = "", node: str = "") -> None:
        self.clock = clock
        self.interval_s = interval_s
        # Record attributes a log formatter may show (`graph/node`, JSON fields).
        self.fields: dict[str, str] = {"graph": graph, "node": node} if graph else {}
        self.next_line_at = 0.0
        self.suppressed = 0

    def error(self, line: str) -> None:
        now = self.clock.now()
        if now < self.next_line_at:
            self.suppressed += 1
            return
        if self.suppressed:
            line += f" ({self.suppressed} more since the last report)"
            self.suppressed = 0
        self.next_line_at = now + self.interval_s
        LOG.warning(line, extra=self.fields)


class NodeErrors(Failures):
    """Implements one node's `on_error`: counts every failure, then drops, dead-letters,
    retries with exponential backoff, or stops the graph."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.policy = ctx.on_error
        self.count = 0
        self.errors_port = ctx.port_index(ERRORS_PORT)
        self.log = RateLimitedLog(ctx.clock, LOG_INTERVAL_S, ctx.graph, ctx.name)
        self.retry_at = 0.0  # the node waits until then before it consumes again
        self.retry_event: Event | None = None
        self.retries_done = 0

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    def event_failed(self, event: Event, message: str, outs: list[Batch]) -> bool:
        action = self.policy.action
        if action == RETRY:
            if self.retry_event is not event:
                self.retry_event = event
                self.retries_done = 0
            if self.retries_done < self.policy.attempts:
                self.retries_done += 1
                backoff_s = self.policy.backoff_ms / 1000.0 * (2 ** (self.retries_done - 1))
                self.retry_at = self.ctx.clock.now() + backoff_s
                return False
            self.retry_event = None
            self.retries_done = 0
            action = self.policy.then or DROP
            message += f" (after {self.policy.attempts} retries)"
        self.count += 1
        message = self.ctx.mask(message)  # it leaves the node: a log line, a dead letter, a failure
        if action == STOP:
            raise NodeFailure(f"{self.where()}: {message}")
        if action == DEAD_LETTER and self.errors_port >= 0:
            outs[self.errors_port].append({"node": self.ctx.name, "error": message, "event": event})
            return True
        self.log.error(f"{self.where()}: {message}; event dropped")
        return True

    def events_failed(self, events: Batch, message: str, outs: list[Batch]) -> None:
        action = self.policy.action
        if action == RETRY:
            action = self.policy.then or DROP
        self.count += len(events)
        message = self.ctx.mask(message)
        if action == STOP:
            raise NodeFailure(f"{self.where()}: {message}")
        if action == DEAD_LETTER and self.errors_port >= 0:
            outs[self.errors_port].extend({"node": self.ctx.name, "error": message, "event": e} for e in events)
            return
        self.log.error(f"{self.where()}: {message}; {len(events)} events dropped")

    def ready(self, now: float) -> bool:
        return now >= self.retry_at
