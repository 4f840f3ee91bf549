"""The JSON Schema of a graph-file version, generated from the node specs.

The committed `schema/graph.vN.json` is this function's output; a test regenerates it
and fails when it is stale. Editors use it through the `$schema` comment in each file.
"""

from typing import Final

from engine.ids import NAME_PATTERN
from engine.plan import (
    DEFAULT_CAPACITY, DEFAULT_ERROR_ACTION, DEFAULT_POLICY, DEFAULT_STORAGE, EDGE_POLICIES, EDGE_STORAGES,
    ERROR_ACTIONS, MERGE_FUNCTIONS,
)
from engine.spec import DURATION, SpecRegistry
from migrations import LATEST, VERSIONS

CURRENT_VERSION: Final = LATEST
SUPPORTED_VERSIONS: Final = VERSIONS
MAX_CAPACITY: Final = 16_777_216
PORT_REF_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$"


def _edge_options(version: int = CURRENT_VERSION) -> dict[str, dict[str, object]]:
    if version >= 2:
        return _edge_options_v2()
    return {
        "capacity": {"type": "integer", "minimum": 1, "maximum": MAX_CAPACITY, "default": DEFAULT_CAPACITY,
                     "description": "How many events the edge holds before its policy applies."},
        "policy": {"enum": list(EDGE_POLICIES), "default": DEFAULT_POLICY,
                   "description": "What happens when the edge is full: block the producer, drop the "
                                  "newest or oldest event, keep only the latest, or coalesce by key."},
        "key": {"anyOf": [{"type": "string", "minLength": 1},
                          {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}],
                "description": "coalesce only: the field or fields that identify events to merge."},
        "merge": {"type": "object", "additionalProperties": {"enum": list(MERGE_FUNCTIONS)},
                  "description": "coalesce only: field -> sum | min | max | first | last. Other fields keep the newest value."},
        "storage": {"enum": list(EDGE_STORAGES), "default": DEFAULT_STORAGE,
                    "description": "memory (default), or lmdb: a durable edge whose events survive a crash "
                                   "or restart until their consumer has handed them on."},
    }


def _edge_options_v2() -> dict[str, dict[str, object]]:
    v1 = _edge_options(1)
    policies = ["keep_latest" if p == "latest" else p for p in EDGE_POLICIES]
    return {
        "capacity": v1["capacity"],
        "policy": {"enum": policies, "default": DEFAULT_POLICY,
                   "description": "What happens when the edge is full: block the producer, drop the "
                                  "newest or oldest event, keep only the latest, or coalesce by key."},
        "key": v1["key"],
        "merge": v1["merge"],
        "durable": {"type": "boolean", "default": False,
                    "description": "Keep the edge's events on disk until their consumer has handed them "
                                   "on: they survive a crash or restart."},
    }


def _defs(registry: SpecRegistry, version: int = CURRENT_VERSION) -> dict[str, object]:
    edge_reference = ({"edge": {"$ref": "#/$defs/edge_options"}} if version >= 2 else _edge_options(version))
    defs: dict[str, object] = {
        "edge_options": {"type": "object", "properties": _edge_options(version), "additionalProperties": False},
        "port_ref": {"type": "string", "pattern": PORT_REF_PATTERN,
                     "description": "A node name, or `node.port` for a named output port."},
        "input_mapping": {
            "type": "object",
            "properties": {
                "node": {"type": "string", "pattern": NAME_PATTERN, "description": "The upstream node."},
                "port": {"type": "string", "pattern": NAME_PATTERN, "description": "Its output port.", "default": "out"},
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
            {"type": "string", "enum": [a for a in ERROR_ACTIONS if a != "retry"]},
            {"type": "object",
             "properties": {
                 "action": {"enum": list(ERROR_ACTIONS)},
                 "attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3},
                 "backoff": dict(DURATION, default="100ms"),
                 "then": {"enum": [a for a in ERROR_ACTIONS if a != "retry"], "default": DEFAULT_ERROR_ACTION},
             },
             "required": ["action"],
             "additionalProperties": False},
        ]},
    }
    node_rules: list[object] = []
    for spec in registry.specs():
        defs["with." + spec.name] = spec.params
        then: dict[str, object] = {"properties": {"with": {"$ref": f"#/$defs/with.{spec.name}"}}}
        if spec.params.get("required") or spec.params.get("minProperties"):
            then["required"] = ["with"]
        node_rules.append({"if": {"properties": {"type": {"const": spec.name}}, "required": ["type"]},
                           "then": then})
    defs["node"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": registry.names(), "description": "The node type."},
            "from": {"$ref": "#/$defs/from"},
            "with": {"type": "object", "description": "The node type's parameters."},
            "on_error": {"$ref": "#/$defs/on_error"},
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
