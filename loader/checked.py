"""The checked stage: a graph whose inputs are resolved and whose options are typed.

Every default is applied here and nowhere else: edge options (`defaults.edge`, then the
engine's), `on_error` and its retry settings, and the parameters a node type's schema gives a
default. `loader.compile` only builds ids and freezes. The JSON Schema's `default` keywords
document the same constants; they apply nothing.

The builders take what the schema has already checked; a value it refused falls back to the
default, so the semantic checks still run, and so does the compile the node families' checks
need (loader/api.py). Such a graph has errors: its plan is never kept.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time

from engine.durations import duration_ms
from engine.errors import DEAD_LETTER, RETRY
from engine.params import whole
from engine.plan import (
    DEFAULT_CAPACITY,
    DEFAULT_ERROR_ACTION,
    DEFAULT_POLICY,
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF_MS,
    ErrorPolicy,
)
from engine.policies import POLICIES
from engine.spec import NodeSpec
from loader.document import KeyPath
from loader.schema_gen import MAX_PARALLELISM


@dataclass(frozen=True)
class EdgeOptions:
    capacity: int = DEFAULT_CAPACITY
    policy: str = DEFAULT_POLICY  # a name in engine.policies.POLICIES
    # Keyed policies (coalesce) only: the key fields, and (field, merge function) sorted by field.
    key: tuple[str, ...] = ()
    merge: tuple[tuple[str, str], ...] = ()
    durable: bool = False
    # Into a node with `parallelism`: the fields that pick each event's instance. Written per
    # input only (the schema refuses it in `defaults.edge`).
    partition_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckedInput:
    node: str
    port: str
    edge: EdgeOptions
    path: KeyPath


@dataclass
class CheckedNode:
    name: str
    spec: NodeSpec
    params: dict[str, object]  # `with:` with every defaulted parameter spelled out
    on_error: ErrorPolicy
    inputs: list[CheckedInput] = field(default_factory=list)
    ports: tuple[str, ...] = ()
    parallelism: int = 1  # instances (engine/partition.py); loader/check_partitions.py checks it


@dataclass
class CheckedGraph:
    name: str
    version: int
    nodes: dict[str, CheckedNode]
    secret_fields: tuple[str, ...] = ()


def edge_options(written: Mapping[str, object]) -> EdgeOptions:
    """One edge's options: `written` holds `defaults.edge` overlaid with the input's own."""
    policy = written.get("policy", DEFAULT_POLICY)
    policy = policy if isinstance(policy, str) and policy in POLICIES else DEFAULT_POLICY
    key: tuple[str, ...] = ()
    merge: tuple[tuple[str, str], ...] = ()
    if POLICIES[policy].keyed:
        raw_key = written.get("key", ())
        if isinstance(raw_key, str):
            key = (raw_key,)
        elif isinstance(raw_key, list):
            key = tuple(str(k) for k in raw_key)
        raw_merge = written.get("merge", {})
        merge = tuple(sorted((str(f), str(fn)) for f, fn in raw_merge.items())) if isinstance(raw_merge, dict) else ()
    return EdgeOptions(
        capacity=whole(written, "capacity", DEFAULT_CAPACITY),
        policy=policy,
        key=key,
        merge=merge,
        durable=written.get("durable") is True,
        partition_by=_fields(written.get("partition_by")),
    )


def _fields(written: object) -> tuple[str, ...]:
    """A field name or a list of them, as written; anything else is no fields (the schema
    reported it)."""
    if isinstance(written, str):
        return (written,) if written else ()
    if isinstance(written, list):
        return tuple(str(f) for f in written)
    return ()


def parallelism(written: object) -> int:
    """A node's `parallelism`; a value the schema refused counts as 1."""
    if isinstance(written, int) and not isinstance(written, bool) and 1 <= written <= MAX_PARALLELISM:
        return written
    return 1


def error_policy(written: object) -> ErrorPolicy:
    """`on_error` as written: an action's name, a mapping, or nothing (the default action)."""
    if isinstance(written, str):
        return ErrorPolicy(action=written)
    if not isinstance(written, Mapping):
        return ErrorPolicy(action=DEFAULT_ERROR_ACTION)
    action = str(written.get("action", DEFAULT_ERROR_ACTION))
    if action != RETRY:
        return ErrorPolicy(action=action)
    backoff = duration_ms(written["backoff"]) if "backoff" in written else DEFAULT_RETRY_BACKOFF_MS
    return ErrorPolicy(
        action=action,
        attempts=whole(written, "attempts", DEFAULT_RETRY_ATTEMPTS),
        backoff_ms=backoff or 0,
        then=str(written.get("then", DEFAULT_ERROR_ACTION)),
    )


def dead_letters(policy: ErrorPolicy) -> bool:
    """Whether the node gets an `errors` port."""
    return DEAD_LETTER in (policy.action, policy.then)


def _plain(value: object) -> object:
    """`value` with TOML's dates and times as their text. No parameter takes one (the schema
    has reported it), but a plan holds only JSON values, even one compiled just to be checked."""
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def with_defaults(spec: NodeSpec, params: dict[str, object]) -> dict[str, object]:
    """Spell out every defaulted parameter, so an explicit default gives the same plan."""
    out = {key: _plain(value) for key, value in params.items()}
    properties = spec.params.get("properties", {})
    assert isinstance(properties, dict)
    for key, schema in properties.items():
        if isinstance(schema, dict) and "default" in schema and key not in out:
            out[key] = schema["default"]
    return out
