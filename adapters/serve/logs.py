"""Log lines of `engine serve` on standard error, as text or as JSON (one object per line).

Reload results carry their fields in the record (`extra={"reload": {...}}`), so the JSON
form has them as keys and the text form prints one readable line per graph.
"""

import json
import logging
import sys
import time
from typing import Final

from adapters.serve.vocabulary import ADDED, nodes_text
from engine.secrets import mask_value

LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


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


def configure(level: str, fmt: str) -> None:
    logger = logging.getLogger("headrace")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.addFilter(MaskSecrets())  # on the handler: it sees the child loggers' records too
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS.get(level, logging.INFO))
    logger.propagate = False
