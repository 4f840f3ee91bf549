"""Log lines of `engine serve` on standard error, as text or as JSON (one object per line).

Reload results carry their fields in the record (`extra={"reload": {...}}`), so the JSON
form has them as keys and the text form prints one readable line per graph.
"""

import json
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

from adapters.serve.vocabulary import ADDED, nodes_text
from engine.secrets import mask_value

LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# How many log lines `engine serve` keeps in memory for `engine diagnostics collect`.
KEPT_LINES: Final = 1000


def _reload_text(fields: dict[str, object]) -> str:
    line = f"reload {fields['file']}: {fields['result']}"
    if fields.get("graph"):
        line += f" (graph '{fields['graph']}'"
        line += f", plan {str(fields['plan_hash'])[:19]})" if fields.get("plan_hash") else ")"
    nodes = fields.get("nodes")
    if isinstance(nodes, dict) and fields.get("result") != ADDED:
        line += f"; {nodes_text(nodes, str(nodes.get('whole_swap', '')))}"
    if fields.get("dropped"):
        line += f"; the drain timed out: {fields['dropped']} events dropped"
    problems = fields.get("problems")
    if isinstance(problems, list):
        line += "".join(f"\n  {p}" for p in problems)
    return line


# What a log line is about, when a record carries it (`extra=`): several graphs run in one
# process, so a node's or an edge's line names its graph.
PLACE_FIELDS: Final = ("graph", "node", "edge")


def _place(record: logging.LogRecord) -> dict[str, str]:
    return {key: str(value) for key in PLACE_FIELDS if (value := getattr(record, key, ""))}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "reload", None)
        message = _reload_text(fields) if isinstance(fields, dict) else record.getMessage()
        place = _place(record)
        part = place.get("node") or place.get("edge")
        if "graph" in place and part:  # `orders_etl/raw: node 'raw' (file.read): ...`
            message = f"{place['graph']}/{part}: {message}"
        return f"engine: {record.levelname.lower()}: {message}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        out.update(_place(record))
        fields = getattr(record, "reload", None)
        if isinstance(fields, dict):
            out.update(fields)
        return json.dumps(out, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when the line is logged (tests swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class MaskSecrets(logging.Filter):
    """The net under every log line: a URL's password or a `password=` value that reached a
    message is written `****` (engine/secrets.py). A node's own secret values are taken out
    where its lines are made (`NodeContext.mask`), since only the node knows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = mask_value(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


@dataclass(frozen=True)
class KeptLine:
    time: float
    level: str
    text: str


class RecentLines(logging.Handler):
    """The newest `capacity` log lines, in memory, as the text format writes them: what
    `GetLogs` answers. Bounded, so a long run does not grow; counts what it let go."""

    def __init__(self, capacity: int = KEPT_LINES) -> None:
        super().__init__()
        self.capacity = capacity
        self.kept: deque[KeptLine] = deque(maxlen=capacity)
        self.discarded = 0
        self.guard = threading.Lock()  # records come from the loop and from worker threads
        self.addFilter(MaskSecrets())
        self.setFormatter(TextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = KeptLine(record.created, record.levelname.lower(), self.format(record))
        except Exception:  # a line that cannot be formatted is the stderr handler's to report
            return
        with self.guard:
            if len(self.kept) == self.capacity:
                self.discarded += 1
            self.kept.append(line)

    def newest(self, limit: int = 0) -> tuple[list[KeptLine], int]:
        """The newest `limit` lines (0: all kept), oldest first, and how many older ones are gone."""
        with self.guard:
            lines = list(self.kept)
            discarded = self.discarded
        if 0 < limit < len(lines):
            discarded += len(lines) - limit
            lines = lines[-limit:]
        return lines, discarded


def configure(level: str, fmt: str) -> RecentLines:
    """Log to standard error in `fmt`; the returned handler keeps the newest lines in memory."""
    logger = logging.getLogger("headrace")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.addFilter(MaskSecrets())  # on the handler: it sees the child loggers' records too
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    recent = RecentLines()
    logger.addHandler(recent)
    logger.setLevel(LEVELS.get(level, logging.INFO))
    logger.propagate = False
    return recent
