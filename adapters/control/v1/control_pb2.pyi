from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GraphSummary(_message.Message):
    __slots__ = ("name", "file", "state", "plan_hash", "last_result", "last_reload_at", "loaded_at", "problems", "last_nodes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    LAST_RESULT_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_AT_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    LAST_NODES_FIELD_NUMBER: _ClassVar[int]
    name: str
    file: str
    state: str
    plan_hash: str
    last_result: str
    last_reload_at: float
    loaded_at: float
    problems: _containers.RepeatedScalarFieldContainer[str]
    last_nodes: NodeChanges
    def __init__(self, name: _Optional[str] = ..., file: _Optional[str] = ..., state: _Optional[str] = ..., plan_hash: _Optional[str] = ..., last_result: _Optional[str] = ..., last_reload_at: _Optional[float] = ..., loaded_at: _Optional[float] = ..., problems: _Optional[_Iterable[str]] = ..., last_nodes: _Optional[_Union[NodeChanges, _Mapping]] = ...) -> None: ...

class NodeChanges(_message.Message):
    __slots__ = ("kept", "replaced", "added", "removed", "whole_swap")
    KEPT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    WHOLE_SWAP_FIELD_NUMBER: _ClassVar[int]
    kept: _containers.RepeatedScalarFieldContainer[str]
    replaced: _containers.RepeatedScalarFieldContainer[str]
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    whole_swap: str
    def __init__(self, kept: _Optional[_Iterable[str]] = ..., replaced: _Optional[_Iterable[str]] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., whole_swap: _Optional[str] = ...) -> None: ...

class ListGraphsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGraphsResponse(_message.Message):
    __slots__ = ("graphs",)
    GRAPHS_FIELD_NUMBER: _ClassVar[int]
    graphs: _containers.RepeatedCompositeFieldContainer[GraphSummary]
    def __init__(self, graphs: _Optional[_Iterable[_Union[GraphSummary, _Mapping]]] = ...) -> None: ...

class GetGraphRequest(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: str
    def __init__(self, graph: _Optional[str] = ...) -> None: ...

class NodeState(_message.Message):
    __slots__ = ("name", "type", "state", "inputs", "events_in", "events_out", "errors", "events_out_by_port", "busy_seconds", "connection", "reconnects", "last_error")
    class EventsOutByPortEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_IN_FIELD_NUMBER: _ClassVar[int]
    EVENTS_OUT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_OUT_BY_PORT_FIELD_NUMBER: _ClassVar[int]
    BUSY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    state: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    events_in: int
    events_out: int
    errors: int
    events_out_by_port: _containers.ScalarMap[str, int]
    busy_seconds: float
    connection: str
    reconnects: int
    last_error: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., state: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., events_in: _Optional[int] = ..., events_out: _Optional[int] = ..., errors: _Optional[int] = ..., events_out_by_port: _Optional[_Mapping[str, int]] = ..., busy_seconds: _Optional[float] = ..., connection: _Optional[str] = ..., reconnects: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class EdgeState(_message.Message):
    __slots__ = ("id", "from_node", "from_port", "to_node", "policy", "capacity", "depth", "enqueued", "dropped", "coalesced", "high_water", "blocked_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    FROM_PORT_FIELD_NUMBER: _ClassVar[int]
    TO_NODE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    COALESCED_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATER_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    from_node: str
    from_port: str
    to_node: str
    policy: str
    capacity: int
    depth: int
    enqueued: int
    dropped: int
    coalesced: int
    high_water: int
    blocked_seconds: float
    def __init__(self, id: _Optional[str] = ..., from_node: _Optional[str] = ..., from_port: _Optional[str] = ..., to_node: _Optional[str] = ..., policy: _Optional[str] = ..., capacity: _Optional[int] = ..., depth: _Optional[int] = ..., enqueued: _Optional[int] = ..., dropped: _Optional[int] = ..., coalesced: _Optional[int] = ..., high_water: _Optional[int] = ..., blocked_seconds: _Optional[float] = ...) -> None: ...

class Graph(_message.Message):
    __slots__ = ("summary", "nodes", "edges", "failure")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    summary: GraphSummary
    nodes: _containers.RepeatedCompositeFieldContainer[NodeState]
    edges: _containers.RepeatedCompositeFieldContainer[EdgeState]
    failure: str
    def __init__(self, summary: _Optional[_Union[GraphSummary, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[NodeState, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[EdgeState, _Mapping]]] = ..., failure: _Optional[str] = ...) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ("graph", "node")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    graph: str
    node: str
    def __init__(self, graph: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class PauseResponse(_message.Message):
    __slots__ = ("graph", "node", "paused", "changed")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    graph: str
    node: str
    paused: bool
    changed: bool
    def __init__(self, graph: _Optional[str] = ..., node: _Optional[str] = ..., paused: _Optional[bool] = ..., changed: _Optional[bool] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("graph", "timeout_s")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    graph: str
    timeout_s: float
    def __init__(self, graph: _Optional[str] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("graph", "drained", "remaining")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    graph: str
    drained: bool
    remaining: int
    def __init__(self, graph: _Optional[str] = ..., drained: _Optional[bool] = ..., remaining: _Optional[int] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadResult(_message.Message):
    __slots__ = ("file", "graph", "result", "plan_hash", "problems", "dropped", "nodes")
    FILE_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    file: str
    graph: str
    result: str
    plan_hash: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    dropped: int
    nodes: NodeChanges
    def __init__(self, file: _Optional[str] = ..., graph: _Optional[str] = ..., result: _Optional[str] = ..., plan_hash: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., dropped: _Optional[int] = ..., nodes: _Optional[_Union[NodeChanges, _Mapping]] = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReloadResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ReloadResult, _Mapping]]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("file", "document", "expected_plan_hash", "signature")
    FILE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    file: str
    document: str
    expected_plan_hash: str
    signature: str
    def __init__(self, file: _Optional[str] = ..., document: _Optional[str] = ..., expected_plan_hash: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ReloadResult
    def __init__(self, result: _Optional[_Union[ReloadResult, _Mapping]] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: str
    def __init__(self, graph: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ReloadResult
    def __init__(self, result: _Optional[_Union[ReloadResult, _Mapping]] = ...) -> None: ...

class TapRequest(_message.Message):
    __slots__ = ("graph", "edge", "limit", "per_second", "every")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    EVERY_FIELD_NUMBER: _ClassVar[int]
    graph: str
    edge: str
    limit: int
    per_second: float
    every: bool
    def __init__(self, graph: _Optional[str] = ..., edge: _Optional[str] = ..., limit: _Optional[int] = ..., per_second: _Optional[float] = ..., every: _Optional[bool] = ...) -> None: ...

class TapEvent(_message.Message):
    __slots__ = ("edge", "time", "json", "missed", "every")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    EVERY_FIELD_NUMBER: _ClassVar[int]
    edge: str
    time: float
    json: str
    missed: int
    every: bool
    def __init__(self, edge: _Optional[str] = ..., time: _Optional[float] = ..., json: _Optional[str] = ..., missed: _Optional[int] = ..., every: _Optional[bool] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EngineEvent(_message.Message):
    __slots__ = ("time", "kind", "graph", "file", "detail", "json")
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    time: float
    kind: str
    graph: str
    file: str
    detail: str
    json: str
    def __init__(self, time: _Optional[float] = ..., kind: _Optional[str] = ..., graph: _Optional[str] = ..., file: _Optional[str] = ..., detail: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class GetLogsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("time", "level", "text")
    TIME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    time: float
    level: str
    text: str
    def __init__(self, time: _Optional[float] = ..., level: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class GetLogsResponse(_message.Message):
    __slots__ = ("lines", "discarded", "capacity", "events")
    LINES_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    discarded: int
    capacity: int
    events: _containers.RepeatedCompositeFieldContainer[EngineEvent]
    def __init__(self, lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ..., discarded: _Optional[int] = ..., capacity: _Optional[int] = ..., events: _Optional[_Iterable[_Union[EngineEvent, _Mapping]]] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: str
    def __init__(self, graph: _Optional[str] = ...) -> None: ...

class PlanView(_message.Message):
    __slots__ = ("graph", "file", "plan_hash", "json")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    graph: str
    file: str
    plan_hash: str
    json: str
    def __init__(self, graph: _Optional[str] = ..., file: _Optional[str] = ..., plan_hash: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...
