"""The `join` node type: its spec, and the whole-graph check that its `left` and `right`
name its two inputs.

Which inputs a node has is in `from:`, outside the node's `with:`, so a type's own checks
cannot see it; the check runs over the compiled plan as a node family's checks do (engine/
spec.py NodeFamily), and the loader places what it finds at `left` or `right`.
"""

from typing import Final

from engine.expr import suggest
from engine.findings import Finding
from engine.ids import DEFAULT_PORT
from engine.join import (
    DEFAULT_JOIN_LATENESS,
    DEFAULT_PREFIX,
    INNER,
    LEFT_JOIN,
    JoinParams,
    join_state_key,
    make_join,
    matching_inputs,
    parse_join,
)
from engine.params import expect
from engine.plan import GraphPlan, NodePlan
from engine.spec import DURATION, FIELD_LIST, TRANSFORM, NodeFamily, NodeSpec, param, params_schema

JOIN_INPUTS: Final = "HR066"  # listed in loader/problems.py
_NAME: Final[dict[str, object]] = {"type": "string", "minLength": 1}


def check_join(params: object) -> list[Finding]:
    """Options that contradict each other (paths inside `with:`)."""
    join = expect(params, JoinParams)
    if join.left and join.left == join.right:
        return [Finding(JOIN_INPUTS, ("right",), f"left and right both name '{join.left}'",
                        "name the other input of `from` as right")]
    return []


def _inputs(plan: GraphPlan, node: NodePlan) -> tuple[str, ...]:
    """The node's inputs as `from:` writes them, in plan order."""
    edges = {edge.id: edge for edge in plan.edges}
    labels: list[str] = []
    for edge_id in node.inputs:
        edge = edges[edge_id]
        port = edge.from_port
        labels.append(edge.from_node if port == DEFAULT_PORT else f"{edge.from_node}.{port}")
    return tuple(labels)


def check_join_inputs(plan: GraphPlan) -> list[Finding]:
    """Every join reads exactly two inputs, and `left` and `right` name one each."""
    findings: list[Finding] = []
    for node in plan.nodes:
        if node.type != JOIN.name:
            continue
        inputs = _inputs(plan, node)
        listed = ", ".join(f"'{label}'" for label in inputs)
        if len(inputs) != 2:
            findings.append(Finding(JOIN_INPUTS, ("nodes", node.name, "from"),
                                    f"a join reads exactly two inputs, its left and right; `from` lists {len(inputs)}",
                                    "list the two nodes to join in `from`, e.g. from: [orders, payments]"))
            continue
        params = expect(parse_join(node.params()), JoinParams)
        for side, name in (("left", params.left), ("right", params.right)):
            found = matching_inputs(name, inputs)
            if len(found) == 1:
                continue
            if found:
                message = f"{side} '{name}' names both inputs ({listed})"
                hint = "name one of them as `node.port`"
            else:
                message = f"{side} '{name}' is not one of the inputs in `from` ({listed})"
                hint = suggest(name, list(inputs)) or f"name one of {listed}"
            findings.append(Finding(JOIN_INPUTS, ("nodes", node.name, "with", side), message, hint))
    return findings


JOIN: Final = NodeSpec(
    name="join",
    kind=TRANSFORM,
    summary="Merges the events of its two inputs whose `on` keys are equal and whose event times are at most "
            "`within` apart (an interval join); `type: left` also passes on left events nothing matched, once "
            "their window has closed. See docs/joins.md for time, lateness and output order.",
    params=params_schema({
        "left": param(_NAME, "The input (a node in `from`, or `node.port`) whose fields come first.", "orders"),
        "right": param(_NAME, "The other input; its fields are added, prefixed when a name is taken.", "payments"),
        "on": param({"anyOf": [_NAME, dict(FIELD_LIST, minItems=1),
                               {"type": "object", "minProperties": 1, "additionalProperties": _NAME}]},
                    "Key field (the same name on both sides), fields, or left field -> right field; events match "
                    "when every key is equal. A missing or null key never matches.",
                    {"order_id": "order"}),
        "within": param(DURATION, "How far apart two events' times may be and still match (either way).", "5m"),
        "time_field": param(_NAME, "The event-time field of both sides: epoch seconds or ISO 8601.", "ts"),
        "type": param({"enum": [INNER, LEFT_JOIN]},
                      "`inner`: only matches. `left`: also each unmatched left event, alone, once no match can "
                      "come (or at the end of input).", LEFT_JOIN, default=INNER),
        "right_prefix": param({"type": "string"},
                              "Put before a right field whose name the left event has (a right key field "
                              "named as its left one is not repeated).", "payment_", default=DEFAULT_PREFIX),
        "allowed_lateness": param(DURATION,
                                  "How far behind the newest event time (of either input) an event may arrive and "
                                  "still join; later events are errors handled by `on_error`. It must cover how "
                                  "far one input runs ahead of the other.", "5m", default=DEFAULT_JOIN_LATENESS),
    }, required=("left", "right", "on", "within", "time_field")),
    factory=make_join,
    parse=parse_join,
    checks=check_join,
    state_key=join_state_key,
    example="type: join\nfrom: [orders, payments]\nwith:\n  left: orders\n  right: payments\n"
            "  on: {order_id: order}\n  within: 10m\n  time_field: ts\n  type: left",
)

# A family of one: its whole-graph check is how `left` and `right` are checked against `from:`.
JOIN_FAMILY: Final = NodeFamily("join", (JOIN,), None, (check_join_inputs,))
