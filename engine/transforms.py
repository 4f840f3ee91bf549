"""The per-event transforms (`map`, `filter`, `route`), the `null` sink and `generate`.

Each evaluates expressions compiled once at build time. A failing expression is one failed
event, handed to `on_error` with a message naming the expression but not the payload.
Each type's `with:` arrives as its frozen parameter class below, built by its spec's `parse`.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from engine.compile_expr import CompiledExpr, ExprCompiler
from engine.functions import describe_error
from engine.node import Batch, Event, Failures, IndexedSource, NodeContext, Source, Transform
from engine.params import NO_PAIRS, Pairs, Raw, expect, number, optional_whole, pairs, text_of, texts, whole

ALL: Final = "all"
FIRST: Final = "first"
UNMATCHED: Final = "unmatched"


@dataclass(frozen=True)
class MapParams:
    set_fields: Pairs = NO_PAIRS  # `set:`, field -> expression
    rename: Pairs = NO_PAIRS
    remove: tuple[str, ...] = ()
    keep: tuple[str, ...] | None = None  # None: every field stays


def parse_map(raw: Raw) -> MapParams:
    keep = texts(raw, "keep") if isinstance(raw.get("keep"), list) else None
    return MapParams(pairs(raw, "set"), pairs(raw, "rename"), texts(raw, "remove"), keep)


@dataclass(frozen=True)
class FilterParams:
    where: str


def parse_filter(raw: Raw) -> FilterParams:
    return FilterParams(text_of(raw, "where"))


@dataclass(frozen=True)
class RouteParams:
    routes: Pairs  # port -> condition, in the order they are tried
    mode: str = ALL


def parse_route(raw: Raw) -> RouteParams:
    return RouteParams(pairs(raw, "routes"), text_of(raw, "mode", ALL))


@dataclass(frozen=True)
class GenerateParams:
    fields: Pairs
    count: int = -1  # -1: unbounded
    rate: float = 0.0  # events per second; 0: as fast as the graph takes them
    seed: int | None = None


def parse_generate(raw: Raw) -> GenerateParams:
    return GenerateParams(pairs(raw, "fields"), whole(raw, "count", -1), number(raw, "rate", 0.0),
                          optional_whole(raw, "seed"))


def _compiler(ctx: NodeContext) -> ExprCompiler:
    return ExprCompiler(ctx.rng, ctx.clock)


def _diagnostic_compiler(ctx: NodeContext) -> ExprCompiler:
    """For re-evaluating one field on the error path: its own random source, so finding
    which field failed never shifts a seeded node's `rand()` sequence."""
    return ExprCompiler(random.Random(0), ctx.clock)


def explain(expr: CompiledExpr, exc: BaseException) -> str:
    return f"{describe_error(exc)} in {expr.label} '{expr.source}'"


def explain_first_failing(exprs: list[CompiledExpr], event: Event, exc: BaseException) -> str:
    """Error path only: when one compiled function evaluates several expressions, find
    which one failed by evaluating them one at a time."""
    for expr in exprs:
        try:
            expr.fn(event)
        except Exception as single:
            return explain(expr, single)
    return describe_error(exc)


class Map(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, MapParams)
        compiler = _compiler(ctx)
        fields = dict(params.set_fields)
        diagnose = _diagnostic_compiler(ctx)
        self.setters = [diagnose.value(source, f"set.{name}") for name, source in fields.items()]
        self.update: Callable[[Event], Event] | None = compiler.update(fields) if fields else None
        self.rename = dict(params.rename)
        self.remove = list(params.remove)
        self.keep: list[str] | None = list(params.keep) if params.keep is not None else None
        # Only `set`: the compiled update is the whole job.
        self.only_set = not self.rename and not self.remove and self.keep is None

    def reshape(self, event: Event) -> Event:
        # `update` already returned a fresh dict; otherwise copy before changing anything.
        out = self.update(event) if self.update is not None else dict(event)
        if self.rename:
            # Renamed fields keep their place in the event.
            rename = self.rename
            out = {rename.get(k, k): v for k, v in out.items()}
        for field in self.remove:
            out.pop(field, None)
        if self.keep is not None:
            out = {k: out[k] for k in self.keep if k in out}
        return out

    def failure(self, event: Event, exc: Exception) -> str:
        return explain_first_failing(self.setters, event, exc)

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        update = self.update
        if update is not None and self.only_set:
            for index, event in enumerate(batch):
                try:
                    out.append(update(event))
                except Exception as exc:
                    if not failures.event_failed(event, self.failure(event, exc), outs):
                        return index
            return len(batch)
        for index, event in enumerate(batch):
            try:
                out.append(self.reshape(event))
            except Exception as exc:
                if not failures.event_failed(event, self.failure(event, exc), outs):
                    return index
        return len(batch)


class Filter(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.where = _compiler(ctx).value(expect(ctx.params, FilterParams).where, "where")
        self.diagnostic = _diagnostic_compiler(ctx).value(self.where.source, "where")

    def failure(self, event: Event, exc: Exception) -> str:
        """Why `where` failed on `event`, found again without touching the node's rng."""
        return explain_first_failing([self.diagnostic], event, exc)

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        where = self.where.fn
        for index, event in enumerate(batch):
            try:
                if where(event):
                    out.append(event)
            except Exception as exc:
                if not failures.event_failed(event, explain(self.where, exc), outs):
                    return index
        return len(batch)


class Route(Transform):
    """Each route's condition picks a port; events matching none go to `unmatched`."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, RouteParams)
        compiler = _compiler(ctx)
        self.routes = [
            (ctx.port_index(port), compiler.value(source, f"routes.{port}")) for port, source in params.routes
        ]
        self.first_only = params.mode == FIRST
        self.unmatched = ctx.port_index(UNMATCHED)
        diagnose = _diagnostic_compiler(ctx)
        self.diagnostics = [diagnose.value(source, f"routes.{port}") for port, source in params.routes]

    def failure(self, event: Event, exc: Exception) -> str:
        """Why a condition failed on `event`: the first one that fails when evaluated in
        order (conditions before it were false, or the event would have been routed)."""
        return explain_first_failing(self.diagnostics, event, exc)

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        for index, event in enumerate(batch):
            # Decide every port first, so a failing condition sends the event nowhere.
            targets: list[int] = []
            checked = 0
            try:
                for port, condition in self.routes:
                    if condition.fn(event):
                        targets.append(port)
                        if self.first_only:
                            break
                    checked += 1
            except Exception as exc:
                failing = self.routes[checked][1]
                if not failures.event_failed(event, explain(failing, exc), outs):
                    return index
                continue
            if not targets:
                targets.append(self.unmatched)
            for port in targets:
                outs[port].append(event)
        return len(batch)


class Null(Transform):
    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        return len(batch)


class Generate(IndexedSource):
    """Events from expressions over the index `i`, optionally paced at `rate` per second."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, GenerateParams)
        if params.seed is not None:
            ctx.rng.seed(params.seed)  # the same `rand()` sequence on every run (fused too: same rng)
        compiler = _compiler(ctx)
        fields = dict(params.fields)
        self.make = compiler.generator(fields)
        diagnose = _diagnostic_compiler(ctx)
        self.fields = [diagnose.value(source, f"fields.{name}") for name, source in fields.items()]
        self.count = params.count
        self.rate = params.rate
        self.i = 0
        self.started_at = -1.0

    def next_index(self) -> int:
        return self.i

    def next_limit(self, budget: int, now: float) -> int:
        """The index this poll may generate up to (exclusive): the budget, the count and
        the rate all bound it."""
        limit = self.i + budget
        if self.count >= 0:
            limit = min(limit, self.count)
        if self.rate > 0:
            if self.started_at < 0:
                self.started_at = now
            due = int((now - self.started_at) * self.rate) + 1
            limit = min(limit, due)
        return limit

    def advance_to(self, limit: int) -> None:
        self.i = limit

    def alive(self) -> bool:
        return self.count < 0 or self.i < self.count

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        limit = self.next_limit(budget, now)
        make = self.make
        out = outs[0]
        i = self.i
        while i < limit:
            try:
                out.append(make(i))
            except Exception as exc:
                if not failures.event_failed({"i": i}, self.failure(i, exc), outs):
                    break
            i += 1
        self.i = i
        return self.alive()

    def failure(self, i: int, exc: Exception) -> str:
        return explain_first_failing(self.fields, {"i": i}, exc)

    def position(self) -> str:
        return str(self.i)

    def resume(self, position: str) -> None:
        if position.isdigit():
            self.i = int(position)

    def deadline(self) -> float:
        if self.rate <= 0 or self.started_at < 0:
            return 0.0
        return self.started_at + self.i / self.rate


def make_map(ctx: NodeContext) -> Transform:
    return Map(ctx)


def make_filter(ctx: NodeContext) -> Transform:
    return Filter(ctx)


def make_route(ctx: NodeContext) -> Transform:
    return Route(ctx)


def make_null(ctx: NodeContext) -> Transform:
    return Null(ctx)


def make_generate(ctx: NodeContext) -> Source:
    return Generate(ctx)
