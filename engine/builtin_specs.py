"""Specs of the node types the runtime core implements itself (no outside world)."""

from typing import Final

from engine.aggregate import (
    DEFAULT_LATENESS,
    aggregate_state_key,
    check_aggregate,
    make_aggregate,
    parse_aggregate,
    without_window,
)
from engine.dedupe import DEFAULT_WINDOW, dedupe_state_key, make_dedupe, parse_dedupe
from engine.explode import EXPLODE_CODE, make_explode, parse_explode
from engine.fused_aggregate import AGGREGATE_CODE
from engine.fused_code import DISCARD_CODE, FILTER_CODE, GENERATE_CODE, MAP_CODE, ROUTE_CODE
from engine.ids import NAME_PATTERN
from engine.join_spec import JOIN_FAMILY
from engine.params import no_params
from engine.sample import SAMPLE
from engine.spec import (
    DURATION,
    EACH_VALUE,
    EXPRESSION,
    FIELD_LIST,
    FORWARDED,
    FRESH,
    HEAD,
    LAST,
    ONE,
    SHARED,
    SINK,
    SOURCE,
    STEP,
    TRANSFORM,
    ExprParam,
    FusionRole,
    NodeSpec,
    param,
    params_schema,
)
from engine.throttle import THROTTLE
from engine.transforms import (
    ALL,
    make_filter,
    make_generate,
    make_map,
    make_null,
    make_route,
    parse_filter,
    parse_generate,
    parse_map,
    parse_route,
)

UNMATCHED_PORT: Final = "unmatched"
WINDOW_TYPES: Final = ("tumbling", "sliding", "session")

GENERATE: Final = NodeSpec(
    name="generate",
    kind=SOURCE,
    summary="Emits events built from expressions over the event index `i` (0, 1, 2, ...).",
    params=params_schema({
        "count": param({"type": "integer", "minimum": 0},
                       "How many events to emit. Omitted: unbounded.", 1000),
        "rate": param({"type": "number", "exclusiveMinimum": 0},
                      "Events per second. Omitted: as fast as the graph accepts them.", 100),
        "fields": param({"type": "object", "additionalProperties": EXPRESSION},
                        "Field name -> expression over `i` (and `rand()`).", {"id": "i", "even": "i % 2 == 0"}),
        "seed": param({"type": "integer"},
                      "Seed for `rand()`: the same seed gives the same events on every run. "
                      "Omitted: a different sequence each run.", 42),
    }, required=("fields",)),
    expressions=(ExprParam("fields", EACH_VALUE, scope=("i",)),),
    factory=make_generate,
    parse=parse_generate,
    fusion=FusionRole(HEAD, FRESH, GENERATE_CODE),
    example="type: generate\nwith:\n  count: 10\n  fields: {id: i, kind: \"'buy' if i % 3 else 'sell'\"}",
)

MAP: Final = NodeSpec(
    name="map",
    kind=TRANSFORM,
    summary="Reshapes each event: `set` fields from expressions (all read the input event), "
            "then `rename`, then `remove`, then `keep`.",
    params=params_schema({
        "set": param({"type": "object", "additionalProperties": EXPRESSION},
                     "Field name -> expression over the input event.", {"amount_cents": "int(amount * 100)"}),
        "remove": param(FIELD_LIST, "Fields to delete.", ["debug"]),
        "rename": param({"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
                        "Old field name -> new field name.", {"uid": "user"}),
        "keep": param(FIELD_LIST, "If given, only these fields are kept.", ["user", "amount_cents"]),
    }, min_properties=1),
    expressions=(ExprParam("set", EACH_VALUE),),
    factory=make_map,
    parse=parse_map,
    # A new event, or (fused on an event nobody else holds) that event changed in place.
    fusion=FusionRole(STEP, FRESH, MAP_CODE),
    example="type: map\nfrom: orders\nwith:\n  set: {amount_cents: \"int(amount * 100)\"}\n  remove: [amount]",
)

FILTER: Final = NodeSpec(
    name="filter",
    kind=TRANSFORM,
    summary="Passes on the events for which `where` is true; drops the others.",
    params=params_schema({
        "where": param(EXPRESSION, "Condition over the event.", "kind == 'buy' and amount > 10"),
    }, required=("where",)),
    expressions=(ExprParam("where", ONE),),
    factory=make_filter,
    parse=parse_filter,
    fusion=FusionRole(STEP, FORWARDED, FILTER_CODE),
    example="type: filter\nfrom: orders\nwith: {where: \"kind == 'buy'\"}",
)

ROUTE: Final = NodeSpec(
    name="route",
    kind=TRANSFORM,
    summary="Sends each event to the output port of every route whose condition holds "
            "(or only the first, with `mode: first`); events matching none go to `unmatched`.",
    params=params_schema({
        "routes": param({
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": NAME_PATTERN, "not": {"enum": [UNMATCHED_PORT, "out", "errors"]}},
            "additionalProperties": EXPRESSION,
        }, "Port name -> condition. Each name becomes an output port (`from: node.port`).",
            {"big": "amount > 1000", "eu": "region == 'eu'"}),
        "mode": param({"enum": ["all", "first"]},
                      "`all`: every matching route gets the event; `first`: only the first match.",
                      "first", default=ALL),
    }, required=("routes",)),
    outputs=(),
    ports_from="routes",
    extra_ports=(UNMATCHED_PORT,),
    expressions=(ExprParam("routes", EACH_VALUE),),
    factory=make_route,
    parse=parse_route,
    fusion=FusionRole(LAST, SHARED, ROUTE_CODE),
    example="type: route\nfrom: orders\nwith:\n  routes: {big: \"amount > 1000\"}",
)

AGGREGATE: Final = NodeSpec(
    name="aggregate",
    kind=TRANSFORM,
    summary="Groups events by key fields and computes aggregates, over the whole input or per window.",
    params=params_schema({
        "by": param({"anyOf": [{"type": "string", "minLength": 1}, FIELD_LIST]},
                    "Field or fields to group by. Omitted: one group for all events.", "user"),
        "fields": param({"type": "object", "minProperties": 1, "additionalProperties": EXPRESSION},
                        "Output field -> count() | sum(x) | min(x) | max(x) | avg(x) | first(x) | last(x) "
                        "| collect(x).",
                        {"total": "sum(amount_cents)", "n": "count()"}),
        "window": param({
            "type": "object",
            "properties": {
                "type": {"enum": list(WINDOW_TYPES), "description": "Window kind."},
                "size": dict(DURATION, description="Window length (tumbling, sliding)."),
                "every": dict(DURATION, description="Sliding windows: how often a window starts."),
                "gap": dict(DURATION, description="Session windows: inactivity that closes a session."),
                "time_field": {"type": "string", "minLength": 1,
                               "description": "Event-time field (epoch seconds or ISO 8601). "
                                              "Omitted: processing time."},
                "allowed_lateness": dict(DURATION, description="Event time only: how far behind the newest "
                                         "event time an event may arrive and still count. Later events are "
                                         "errors handled by `on_error`.", default=DEFAULT_LATENESS),
            },
            "required": ["type"],
            "additionalProperties": False,
            "allOf": [
                {"if": {"properties": {"type": {"const": "tumbling"}}}, "then": {"required": ["size"]}},
                {"if": {"properties": {"type": {"const": "sliding"}}}, "then": {"required": ["size", "every"]}},
                {"if": {"properties": {"type": {"const": "session"}}}, "then": {"required": ["gap"]}},
            ],
        }, "Emit per window instead of at end of input.", {"type": "tumbling", "size": "1m"}),
    }, required=("fields",)),
    expressions=(ExprParam("fields", EACH_VALUE, aggregate=True),),
    factory=make_aggregate,
    parse=parse_aggregate,
    checks=check_aggregate,
    fusion=FusionRole(LAST, FRESH, AGGREGATE_CODE, fusable=without_window),
    state_key=aggregate_state_key,
    example="type: aggregate\nfrom: buys\nwith:\n  by: user\n  fields: {total: \"sum(amount)\", n: \"count()\"}",
)

DEDUPE: Final = NodeSpec(
    name="dedupe",
    kind=TRANSFORM,
    summary="Drops events whose `key` it passed on among the last `window` events: the "
            "duplicates a crash can cause on durable edges (its memory is saved with them).",
    params=params_schema({
        "key": param({"anyOf": [{"type": "string", "minLength": 1},
                                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
                     "The field or fields that identify an event.", "order_id"),
        "window": param({"type": "integer", "minimum": 1, "default": DEFAULT_WINDOW},
                        "How many recent keys are remembered (duplicates after a crash are at most one "
                        "batch of 1024 per edge).", 4096),
    }, required=("key",)),
    factory=make_dedupe,
    parse=parse_dedupe,
    state_key=dedupe_state_key,
    example="type: dedupe\nfrom: payments\nwith: {key: payment_id}",
)

EXPLODE: Final = NodeSpec(
    name="explode",
    kind=TRANSFORM,
    summary="Emits one event per element of a list field: the element goes into `as`, the list "
            "field is removed. A missing, null or empty list emits nothing (or, with `keep_empty`, "
            "one event whose `as` is null); any other value is a failed event for `on_error`.",
    params=params_schema({
        "field": param({"type": "string", "minLength": 1}, "The field holding the list.", "items"),
        "as": param({"type": "string", "minLength": 1},
                    "The field each element goes into. Omitted: the list field's own name.", "item"),
        "keep_empty": param({"type": "boolean"},
                            "An empty, null or missing list still emits the event once, with `as` null.",
                            True, default=False),
        "keep_fields": param({"type": "boolean"},
                             "Every emitted event carries the event's other fields; `false`: only `as`.",
                             False, default=True),
    }, required=("field",)),
    factory=make_explode,
    parse=parse_explode,
    # Every emitted event is a new dict; fused, the members after it run once per element.
    fusion=FusionRole(STEP, FRESH, EXPLODE_CODE),
    example="type: explode\nfrom: orders\nwith: {field: items, as: item}",
)

NULL: Final = NodeSpec(
    name="null",
    kind=SINK,
    summary="Discards every event (useful in tests and benchmarks).",
    params=params_schema({}),
    factory=make_null,
    parse=no_params,
    fusion=FusionRole(LAST, SHARED, DISCARD_CODE),
    example="type: \"null\"\nfrom: orders",
)

BUILTIN_SPECS: Final = (GENERATE, MAP, FILTER, ROUTE, AGGREGATE, DEDUPE, NULL, EXPLODE, THROTTLE, SAMPLE)
# Built-in types that come with a whole-graph check (engine/spec.py NodeFamily).
BUILTIN_FAMILIES: Final = (JOIN_FAMILY,)
