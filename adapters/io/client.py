"""Client libraries of connectors load only when a graph runs one of their nodes, so that
validating and planning need none of them installed."""

import importlib
from types import ModuleType

from engine.node import NodeFailure


def require(module: str, extra: str, node: str) -> ModuleType:
    """`module`, imported; when it is not installed, the one line that says which extra to add."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NodeFailure(f"node '{node}': its client library {module} is not installed; install it with "
                          f"`pip install 'headrace[{extra}]'`") from None
