"""The one place that builds node, port and edge ids.

Node names match `[a-z][a-z0-9_]*`, so neither separator below can appear inside a
name; the loader reports a name that breaks this rule before any id is built.
"""

from typing import Final

PORT_SEPARATOR: Final = "."
EDGE_SEPARATOR: Final = "->"
DEFAULT_PORT: Final = "out"
NAME_PATTERN: Final = r"^[a-z][a-z0-9_]*$"


def port_id(node: str, port: str) -> str:
    """`node` for the default output port, `node.port` otherwise."""
    if port == DEFAULT_PORT:
        return node
    return node + PORT_SEPARATOR + port


def edge_id(from_node: str, from_port: str, to_node: str) -> str:
    """`from->to`, or `from.port->to` for a non-default output port."""
    return port_id(from_node, from_port) + EDGE_SEPARATOR + to_node


def split_port_ref(ref: str) -> tuple[str, str]:
    """Split a `from:` reference (`node` or `node.port`) into node and port."""
    node, sep, port = ref.partition(PORT_SEPARATOR)
    if not sep:
        return node, DEFAULT_PORT
    return node, port
