"""The JSON Schema of a graph-file version, generated from the node specs.

The committed `schema/graph.vN.json` is this function's output; a test regenerates it
and fails when it is stale. Editors use it through the `$schema` comment in each file.
"""

from typing import Final

from engine.errors import RETRY
from engine.ids import NAME_PATTERN
from engine.plan import (
    DEFAULT_CAPACITY,
    DEFAULT_ERROR_ACTION,
    DEFAULT_POLICY,
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF_MS,
    ERROR_ACTIONS,
    MERGE_FUNCTIONS,
)
from engine.policies import POLICIES
from engine.spec import DURATION, SpecRegistry
from migrations import CURRENT_VERSION, SUPPORTED_VERSIONS, v1_to_v2

MAX_CAPACITY: Final = 16_777_216
MAX_PARALLELISM: Final = 1024  # instances of one node (docs/graph-format.md#parallelism-and-partitions)
PORT_REF_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$"
ENV_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"  # what `${VAR}` names (loader/interpolate.py)


def _spoken(items: list[str]) -> str:
    return ", ".join(items[:-1]) + ", or " + items[-1] if len(items) > 1 else "".join(items)


def _policy_option(version: int) -> dict[str, object]:
    """The policies of engine/policies.py a file of `version` may name, in its words (an older
    format's names come from the migration that renamed them)."""
    old_names = {new: old for old, new in v1_to_v2.POLICY_RENAMES.items()} if version < v1_to_v2.TO_VERSION else {}
    rows = [p for p in POLICIES.values() if p.since <= version]
    return {"enum": [old_names.get(p.name, p.name) for p in rows], "default": DEFAULT_POLICY,
            "description": "What happens when the edge is full: " + _spoken([p.summary for p in rows]) + "."}


def _edge_options(version: int = CURRENT_VERSION) -> dict[str, dict[str, object]]:
    keyed = " or ".join(p.name for p in POLICIES.values() if p.keyed and p.since <= version)
    options: dict[str, dict[str, object]] = {
        "capacity": {"type": "integer", "minimum": 1, "maximum": MAX_CAPACITY, "default": DEFAULT_CAPACITY,
                     "description": "How many events the edge holds before its policy applies."},
        "policy": _policy_option(version),
        "key": {"anyOf": [{"type": "string", "minLength": 1},
                          {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}],
                "description": f"{keyed} only: the field or fields that identify events to merge."},
        "merge": {"type": "object", "additionalProperties": {"enum": list(MERGE_FUNCTIONS)},
                  "description": f"{keyed} only: field -> {' | '.join(MERGE_FUNCTIONS)}. Other fields keep the "
                                 "newest value."},
    }
    if version < v1_to_v2.TO_VERSION:
        storages = v1_to_v2.STORAGE_TO_DURABLE
        options["storage"] = {
            "enum": list(storages), "default": next(name for name, durable in storages.items() if not durable),
            "description": "memory (default), or lmdb: a durable edge whose events survive a crash "
                           "or restart until their consumer has handed them on."}
    else:
        options["durable"] = {
            "type": "boolean", "default": False,
            "description": "Keep the edge's events on disk until their consumer has handed them "
                           "on: they survive a crash or restart."}
    return options


# Per input only: it picks the instances of that input's node, so it means nothing in
# `defaults.edge` (check_schema.py says where it goes). An addition to versions 1 and 2.
PARTITION_BY: Final[dict[str, object]] = {
    "anyOf": [{"type": "string", "minLength": 1},
              {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1}}],
    "description": "Into a node with `parallelism`: the field or fields whose stable hash picks the "
                   "instance each event goes to (one key always reaches the same instance).",
}
PARALLELISM: Final[dict[str, object]] = {
    "type": "integer", "minimum": 1, "maximum": MAX_PARALLELISM, "default": 1,
    "description": "How many instances of this transform run side by side; see `partition_by` on its input.",
}


def _defs(registry: SpecRegistry, version: int = CURRENT_VERSION) -> dict[str, object]:
    input_options = dict(_edge_options(version), partition_by=PARTITION_BY)
    # Version 2 moved an input's edge options into `edge:`.
    edge_reference = ({"edge": {"$ref": "#/$defs/input_edge_options"}} if version >= v1_to_v2.TO_VERSION
                      else input_options)
    defs: dict[str, object] = {
        "edge_options": {"type": "object", "properties": _edge_options(version), "additionalProperties": False},
        **({"input_edge_options": {"type": "object", "properties": input_options, "additionalProperties": False}}
           if version >= v1_to_v2.TO_VERSION else {}),
        "port_ref": {"type": "string", "pattern": PORT_REF_PATTERN,
                     "description": "A node name, or `node.port` for a named output port."},
        "input_mapping": {
            "type": "object",
            "properties": {
                "node": {"type": "string", "pattern": NAME_PATTERN, "description": "The upstream node."},
                "port": {"type": "string", "pattern": NAME_PATTERN, "description": "Its output port.",
                         "default": "out"},
                **edge_reference,
            },
            "required": ["node"],
            "additionalProperties": False,
        },
        "input": {"anyOf": [{"$ref": "#/$defs/port_ref"}, {"$ref": "#/$defs/input_mapping"}]},
        "from": {"anyOf": [
            {"$ref": "#/$defs/port_ref"},
            {"$ref": "#/$defs/input_mapping"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/input"}},
        ]},
        "on_error": {"anyOf": [
            {"type": "string", "enum": [a for a in ERROR_ACTIONS if a != RETRY]},
            {"type": "object",
             "properties": {
                 "action": {"enum": list(ERROR_ACTIONS)},
                 "attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": DEFAULT_RETRY_ATTEMPTS},
                 "backoff": dict(DURATION, default=f"{DEFAULT_RETRY_BACKOFF_MS}ms"),
                 "then": {"enum": [a for a in ERROR_ACTIONS if a != RETRY], "default": DEFAULT_ERROR_ACTION},
             },
             "required": ["action"],
             "additionalProperties": False},
        ]},
    }
    node_rules: list[object] = []
    # A type appears in the schema of the version that introduced it and every later one.
    specs = [spec for spec in registry.specs() if spec.since <= version]
    for spec in specs:
        defs["with." + spec.name] = spec.params
        then: dict[str, object] = {"properties": {"with": {"$ref": f"#/$defs/with.{spec.name}"}}}
        if spec.params.get("required") or spec.params.get("minProperties"):
            then["required"] = ["with"]
        node_rules.append({"if": {"properties": {"type": {"const": spec.name}}, "required": ["type"]},
                           "then": then})
    defs["node"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": [spec.name for spec in specs], "description": "The node type."},
            "from": {"$ref": "#/$defs/from"},
            "with": {"type": "object", "description": "The node type's parameters."},
            "on_error": {"$ref": "#/$defs/on_error"},
            "parallelism": PARALLELISM,
            "description": {"type": "string"},
        },
        "required": ["type"],
        "additionalProperties": False,
        "allOf": node_rules,
    }
    return defs


def graph_schema(registry: SpecRegistry, version: int = CURRENT_VERSION) -> dict[str, object]:
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"no schema for version {version}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:headrace:schema:graph.v{version}.json",
        "title": f"Headrace graph file, version {version}",
        "type": "object",
        "properties": {
            "version": {"const": version, "description": "Graph-file format version."},
            "name": {"type": "string", "pattern": NAME_PATTERN,
                     "description": "Graph name, unique in a directory. Defaults to the file name."},
            "description": {"type": "string"},
            "secret_fields": {
                "type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True,
                "description": "Event fields that hold secrets: masked wherever events are shown "
                               "(`engine ctl tap`), never in the data itself.",
            },
            "secret_env": {
                "type": "array", "items": {"type": "string", "pattern": ENV_NAME_PATTERN}, "uniqueItems": True,
                "description": "Environment variables that hold secrets: a `with:` value taken from one "
                               "(`${VAR}`, like `${secret:VAR}`) is shown as `****` wherever the plan is "
                               "shown.",
            },
            "defaults": {
                "type": "object",
                "properties": {"edge": {"$ref": "#/$defs/edge_options"}},
                "additionalProperties": False,
            },
            "nodes": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/node"},
            },
        },
        "required": ["version", "nodes"],
        "additionalProperties": False,
        "$defs": _defs(registry, version),
    }
