"""JSON Schema validation, with every error turned into a located, hinted Problem."""

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.errors import RETRY
from engine.expr import suggest
from engine.secrets import masked_secret as mask_secret_shape
from engine.spec import SpecRegistry
from loader.document import Document, KeyPath
from loader.problems import ERROR, Problem, format_path
from loader.schema_gen import graph_schema

_TYPE_NAMES: Final = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "object": "a mapping", "array": "a list", "null": "null",
}
_RANGE: Final = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems",
                 "maxItems", "minProperties", "maxProperties", "minLength", "maxLength")


@lru_cache(maxsize=8)
def _validators(registry: SpecRegistry, version: int) -> tuple[Draft202012Validator, dict[str, Draft202012Validator]]:
    """The document's validator, and one per node type for its `with:` block.

    The committed schema chooses each node's `with:` schema with if/then rules, which
    editors need; evaluating every rule for every node was most of the loader's time, so
    validation dispatches on the node's type directly. The outcome is the same.
    """
    schema = graph_schema(registry, version)
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    defs["node"] = {k: v for k, v in defs["node"].items() if k != "allOf"}
    per_type = {spec.name: Draft202012Validator(spec.params) for spec in registry.specs()}
    return Draft202012Validator(schema), per_type


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 40 else "a string"
    return repr(value)


class _Translator:
    def __init__(self, doc: Document, later_types: dict[str, int] | None = None) -> None:
        self.doc = doc
        # Types the file's version does not have yet -> the version that introduced them.
        self.later_types = later_types or {}
        # Set while the errors of a secret parameter are translated: no message quotes it.
        self.hiding = False

    def message_of(self, error: ValidationError) -> str:
        """jsonschema's own message, which quotes the value: not for a secret one."""
        return f"the secret value fails the schema's `{error.validator}` rule" if self.hiding else error.message

    def describe(self, value: object) -> str:
        if self.hiding:
            return "the secret value" if isinstance(value, str) else _describe_value(mask_secret_shape(value))
        return _describe_value(value)

    def problem(self, code: str, path: KeyPath, message: str, hint: str, at_key: bool = False) -> Problem:
        pos = self.doc.locate(path, at_key=at_key)
        variables = self.doc.interpolated.get(path)
        if variables:
            hint = (hint + "; " if hint else "") + "the value came from ${" + "}, ${".join(variables) + "}"
        return Problem(code, ERROR, self.doc.file, pos.line, pos.column, format_path(path), message, hint)

    def translate(self, error: ValidationError, base: KeyPath = ()) -> Iterator[Problem]:
        path: KeyPath = base + tuple(error.absolute_path)
        kind = error.validator
        schema = error.schema if isinstance(error.schema, dict) else {}
        if kind in ("anyOf", "oneOf"):
            yield from self.alternatives(error, path, base)
        elif kind == "required":
            instance, required = error.instance, error.validator_value
            missing: list[str] = []
            if isinstance(required, list) and isinstance(instance, dict):
                missing = [str(k) for k in required if k not in instance]
            for key in missing:
                where = format_path(path) or "the top level"
                yield self.problem("HR020", path, f"missing required key '{key}' in {where}",
                                   f"add `{key}:`", at_key=True)
        elif kind == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    listed = "allowed keys: " + ", ".join(allowed) if allowed else "this mapping takes no keys"
                    hint = suggest(str(key), allowed) or listed
                    if key == "partition_by" and path == ("defaults", "edge"):
                        hint = ("partition_by belongs to one input, the edge into a node with `parallelism`: "
                                "`from: {node: buys, edge: {partition_by: user}}`")
                    yield self.problem("HR021", path + (key,), f"unknown key '{key}'", hint, at_key=True)
        elif "propertyNames" in error.schema_path:
            what = "node name" if path == ("nodes",) else "port name"
            hint = "names are lower case letters, digits and '_', starting with a letter"
            if what == "port name":
                hint += "; 'unmatched', 'out' and 'errors' are reserved"
            yield self.problem("HR030", path + (str(error.instance),), f"invalid {what} '{error.instance}'",
                               hint, at_key=True)
        elif kind == "type":
            expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            wanted = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
            yield self.problem("HR022", path, f"expected {wanted}, got {self.describe(error.instance)}",
                               self.type_hint(error.instance, expected))
        elif kind in ("enum", "const"):
            yield self.choice(error, path)
        elif kind in _RANGE:
            yield self.problem("HR024", path, self.message_of(error), self.range_hint(str(kind), error.validator_value))
        elif kind == "pattern" and path == ("name",):
            yield self.problem("HR030", path, f"invalid graph name {self.describe(error.instance)}",
                               "names are lower case letters, digits and '_', starting with a letter")
        elif kind == "pattern":
            yield self.problem("HR025", path, f"{self.describe(error.instance)} does not have the expected form",
                               self.pattern_hint(str(error.validator_value)))
        else:
            yield self.problem("HR025", path, self.message_of(error), "")

    def choice(self, error: ValidationError, path: KeyPath) -> Problem:
        allowed = error.validator_value
        options = list(allowed) if error.validator == "enum" and isinstance(allowed, list) else [allowed]
        shown = ", ".join(str(o) for o in options)
        value = error.instance
        hint = suggest(value, [str(o) for o in options]) if isinstance(value, str) else ""
        if len(path) == 3 and path[0] == "nodes" and path[2] == "type":
            if value is None:
                return self.problem("HR031", path, "unknown node type null",
                                    'the null sink is written in quotes: type: "null"')
            if isinstance(value, str) and value in self.later_types:
                return self.problem("HR031", path, f"node type '{value}' needs graph format version "
                                    f"{self.later_types[value]}",
                                    "upgrade the file with `engine migrate` (see docs/migrations.md)")
            return self.problem("HR031", path, f"unknown node type {self.describe(value)}",
                                hint or "node types: " + shown)
        if value == RETRY and path and path[-1] == "on_error":
            hint = "retry takes options, so it is written as a mapping: {action: retry, attempts: 3, backoff: 100ms}"
        return self.problem("HR023", path, f"{self.describe(value)} is not one of: {shown}",
                            hint or "choose one of the listed values")

    def alternatives(self, error: ValidationError, path: KeyPath, base: KeyPath) -> Iterator[Problem]:
        # Pick the branches whose type matches the value; their errors are the real ones.
        by_branch: dict[int, list[ValidationError]] = {}
        for sub in error.context or []:
            by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
        fitting = [errs for errs in by_branch.values()
                   if not any(e.validator == "type" and not e.relative_path for e in errs)]
        if len(fitting) == 1:
            for sub in fitting[0]:
                yield from self.translate(sub, base)
            return
        branches = error.validator_value if isinstance(error.validator_value, list) else []
        wanted = sorted({self.branch_type(b) for b in branches})
        yield self.problem("HR022", path, f"expected {' or '.join(wanted)}, got {self.describe(error.instance)}",
                           self.alternatives_hint(path))

    def branch_type(self, branch: object) -> str:
        if isinstance(branch, dict):
            ref = branch.get("$ref")
            if isinstance(ref, str):
                return {"#/$defs/port_ref": "a node name", "#/$defs/input_mapping": "a mapping",
                        "#/$defs/input": "a node name or mapping"}.get(ref, "a valid value")
            return _TYPE_NAMES.get(str(branch.get("type")), "a valid value")
        return "a valid value"

    def alternatives_hint(self, path: KeyPath) -> str:
        if path and path[-1] == "from":
            return "write a node name, `node.port`, a list of them, or {node: ..., capacity: ..., policy: ...}"
        if path and path[-1] == "on_error":
            return "write stop, drop or dead_letter, or {action: retry, attempts: 3, backoff: 100ms, then: stop}"
        return ""

    def type_hint(self, value: object, expected: list[object]) -> str:
        if isinstance(value, str) and "integer" in expected and value.strip().lstrip("-").isdigit():
            return "remove the quotes to make it a number"
        if value is None:
            return "the value is empty (or null): write one after the colon, or quote it: \"null\""
        if isinstance(value, bool) and "string" in expected:
            return "YAML reads true/false/yes as booleans here only if unquoted; quote the value to make it text"
        return ""

    def range_hint(self, kind: str, bound: object) -> str:
        if kind in ("minItems", "minProperties", "minLength"):
            return f"give at least {bound}"
        if kind in ("maxItems", "maxProperties", "maxLength"):
            return f"give at most {bound}"
        return {"minimum": f"use {bound} or more", "maximum": f"use {bound} or less",
                "exclusiveMinimum": f"use more than {bound}",
                "exclusiveMaximum": f"use less than {bound}"}.get(kind, "")

    def pattern_hint(self, pattern: str) -> str:
        if "ms|s|m|h|d" in pattern:
            return "write a duration such as 500ms, 10s, 5m, 1h or 1d"
        if "a-z" in pattern:
            return "names are lower case letters, digits and '_', starting with a letter; a port is `node.port`"
        return f"expected to match {pattern}"


def _unresolved(doc: Document, problem: Problem) -> bool:
    return any(format_path(path) == problem.path for path in doc.unresolved)


def document_problems(doc: Document, schema: dict[str, object]) -> list[Problem]:
    """`doc` against a schema of its own (a graph test file's), each problem located."""
    translator = _Translator(doc)
    return [p for error in Draft202012Validator(schema).iter_errors(doc.data) for p in translator.translate(error)]


def schema_problems(doc: Document, registry: SpecRegistry, version: int) -> list[Problem]:
    translator = _Translator(doc, {spec.name: spec.since for spec in registry.specs() if spec.since > version})
    document, per_type = _validators(registry, version)
    problems: list[Problem] = []
    for error in document.iter_errors(doc.data):
        problems.extend(translator.translate(error))
    nodes = doc.data.get("nodes") if isinstance(doc.data, dict) else None
    for name, node in (nodes.items() if isinstance(nodes, dict) else ()):
        node_type = node.get("type") if isinstance(node, dict) else None
        params = node.get("with") if isinstance(node, dict) else None
        if not (isinstance(node_type, str) and node_type in per_type):
            continue
        if params is None:
            spec_params = per_type[node_type].schema
            if isinstance(spec_params, Mapping) and (spec_params.get("required") or spec_params.get("minProperties")):
                needed = spec_params.get("required") or sorted(spec_params.get("properties", {}))
                problems.append(translator.problem(
                    "HR020", ("nodes", name), f"missing required key 'with' in nodes.{name}",
                    f"{node_type} needs parameters under `with:`: " + ", ".join(needed), at_key=True))
            continue
        if isinstance(params, dict):
            spec = registry.get(node_type)
            secrets = spec.secrets if spec is not None else ()
            for error in per_type[node_type].iter_errors(params):
                translator.hiding = ((bool(error.absolute_path) and error.absolute_path[0] in secrets)
                                     or _holds_secret(doc, ("nodes", name, "with", *error.absolute_path)))
                problems.extend(translator.translate(error, ("nodes", name, "with")))
            translator.hiding = False
    return [p for p in problems if not _unresolved(doc, p)]


def _holds_secret(doc: Document, path: KeyPath) -> bool:
    """Whether the value at `path` is, holds or lies inside one from a secret variable."""
    return any(path[:len(secret)] == secret or secret[:len(path)] == path for secret in doc.secrets)
