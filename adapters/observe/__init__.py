"""Views of the engine's counters for operators: the Prometheus endpoint (docs/observability.md)."""


class MetricsError(Exception):
    """The metrics endpoint cannot start as configured; the message is one line naming the fix."""
