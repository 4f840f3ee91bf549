"""The JSON Schema of graph test files (`*.test.yaml`, `*.test.toml`), format version 1.

Committed as `schema/tests.v1.json` and printed by `engine schema --tests`; a test fails
when the two drift. Test files have their own version, independent of graph files.
"""

from typing import Final

TEST_FORMAT_VERSION: Final = 1
CONDITIONS: Final = ("equals", "equals_unordered", "contains", "count", "all", "any", "snapshot")

_EVENTS: Final[dict[str, object]] = {
    "type": "array",
    "items": {"type": "object", "description": "one event, as a mapping of fields"},
}


def _text(description: str, example: str) -> dict[str, object]:
    return {"type": "string", "minLength": 1, "description": description, "examples": [example]}


def _condition() -> dict[str, object]:
    return {
        "type": "object",
        "description": "What must hold for the events a node emitted on one port (or a sink received).",
        "properties": {
            "equals": dict(_EVENTS, description="exactly these events, in this order"),
            "equals_unordered": dict(_EVENTS, description="exactly these events, in any order"),
            "contains": dict(_EVENTS, description="each of these events appears, in any order; others may too"),
            "count": {"type": "integer", "minimum": 0, "description": "how many events", "examples": [3]},
            "all": _text("an expression that must be true for every event (a missing field reads as null)",
                         "amount > 0"),
            "any": _text("an expression that must be true for at least one event", "country == 'DE'"),
            "snapshot": {"type": "boolean", "description": "compare with the stored snapshot "
                                                           "(`engine test --update` writes it)"},
        },
        "additionalProperties": False,
        "minProperties": 1,
    }


def _input() -> dict[str, object]:
    every = {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$", "examples": ["10s"],
             "description": "one event every this long on the test's virtual clock (default: all at once)"}
    fixture = _text("a JSON Lines, CSV or lines file (by extension: .jsonl/.ndjson/.json, .csv, anything else "
                    "one `{line: ...}` per line), relative to the test file", "fixtures/orders.jsonl")
    return {
        "description": "the events a source emits in this test: a list, a fixture file, or either paced",
        "anyOf": [
            _EVENTS,
            {"type": "object", "properties": {"file": fixture, "every": every},
             "required": ["file"], "additionalProperties": False},
            {"type": "object", "properties": {"events": _EVENTS, "every": every},
             "required": ["events"], "additionalProperties": False},
        ],
    }


def _counters() -> dict[str, object]:
    return {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}


def _test() -> dict[str, object]:
    return {
        "type": "object",
        "properties": {
            "name": _text("the test's name (unique in its file; `-k` selects by it)", "valid orders come out cleaned"),
            "description": {"type": "string", "description": "what the test is for"},
            "inputs": {"type": "object", "description": "source node -> its events; sources not named emit nothing",
                       "additionalProperties": _input()},
            "expect": {"type": "object", "description": "`node` (its `out` port) or `node.port` -> conditions",
                       "additionalProperties": _condition(), "minProperties": 1},
            "stats": {
                "type": "object",
                "description": "counters the run must end with, as `engine run --stats-file` writes them",
                "properties": {
                    "nodes": {"type": "object", "additionalProperties": _counters()},
                    "edges": {"type": "object", "additionalProperties": _counters()},
                },
                "additionalProperties": False,
            },
            "start_time": _text("the virtual clock's start, RFC 3339 (default 2024-01-01T00:00:00Z)",
                                "2024-06-01T12:00:00Z"),
        },
        "required": ["name", "expect"],
        "additionalProperties": False,
    }


def graph_test_schema() -> dict[str, object]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://headrace.dev/schema/tests.v{TEST_FORMAT_VERSION}.json",
        "title": f"Headrace graph tests, version {TEST_FORMAT_VERSION}",
        "type": "object",
        "properties": {
            "version": {"const": TEST_FORMAT_VERSION, "description": "the test-file format version"},
            "graph": _text("the graph file under test, relative to this file", "orders_etl.yaml"),
            "env": {"type": "object", "description": "the only variables the graph's `${VAR}` sees in a test",
                    "additionalProperties": {"type": "string"}},
            "tests": {"type": "array", "items": _test(), "minItems": 1},
        },
        "required": ["version", "graph", "tests"],
        "additionalProperties": False,
    }
