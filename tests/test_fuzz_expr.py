"""Fuzzing the expression language: 12,000 generated expressions per run (tests/fuzz_exprs.py)
go through the loader's checker, the per-event compiler and evaluation on events of every
kind, and the promises of docs/expressions.md must hold for each:

- the checker answers with located errors, never an exception;
- what compiles reaches nothing but the listed functions: its code reads no attribute,
  imports nothing, names no global but the expression functions and guards, and creates no
  function; its builtins hold only the importer `strptime` needs; evaluating it raises no
  audit event (no import, open, exec, ...), and its result is plain data;
- evaluation either answers or fails with a clean per-event error (a described type,
  value, lookup, limit or arithmetic error), never anything else;
- nothing runs unbounded: results too large are refused by the guards before they are
  built (the run's memory is capped at 3 GB above where it starts, so a result that slipped
  through fails as MemoryError instead of taking the machine; a hang is ended by a
  watchdog that prints the stack);
- a sample, written into a graph, gets located load problems from `engine validate`'s loader.

A failure prints the run's seed (also in the test id); `HEADRACE_FUZZ_SEED=<seed>` replays it.
"""

import contextlib
import dis
import faulthandler
import json
import random
import resource
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import functions
from engine.compile_expr import ExprCompiler
from engine.expr import (
    AGGREGATE_SHAPE,
    FORBIDDEN,
    INVALID_ARGUMENT,
    PRIVATE_NAME,
    SYNTAX,
    UNKNOWN_AGGREGATE,
    UNKNOWN_FUNCTION,
    UNKNOWN_NAME,
    WRONG_ARGUMENT_COUNT,
    check,
)
from engine.functions import ExprLimitError, ExprValueError, describe_error
from engine.node import ManualClock
from loader import load_text
from loader.problems import CODES
from tests import fuzz_docs, fuzz_exprs

SEED = fuzz_docs.run_seed()
SHARDS = 3
PER_SHARD = 4_000  # 12,000 expressions per run
LOADED_EVERY = 10  # one in ten also goes through load_text inside a graph
EVENTS = fuzz_exprs.events(SEED)
KINDS = {SYNTAX, FORBIDDEN, UNKNOWN_FUNCTION, WRONG_ARGUMENT_COUNT, PRIVATE_NAME, UNKNOWN_NAME, UNKNOWN_AGGREGATE,
         AGGREGATE_SHAPE, INVALID_ARGUMENT}
# What a failed evaluation may raise: each is described without its payload (functions.describe_error).
CLEAN = (ExprLimitError, ExprValueError, TypeError, ValueError, KeyError, IndexError, ZeroDivisionError,
         OverflowError)
# Bytecode a compiled expression never holds: attribute access, imports, stores, new functions.
FORBIDDEN_OPS = ("ATTR", "IMPORT", "METHOD", "STORE", "DELETE", "BUILD_CLASS", "MAKE_FUNCTION", "CLOSURE",
                 "DEREF", "YIELD", "SEND", "LOAD_NAME")
PLAIN = (type(None), bool, int, float, str, list, tuple, dict)
MEMORY_HEADROOM = 3 << 30
HANG_AFTER_S = 900  # only a watchdog: the whole run takes seconds


def ids(shard: int) -> str:
    return f"seed{SEED}-shard{shard}"


# --- the run's audit events, from this thread only ---------------------------------------------

_AUDITED: list[list[str]] = []  # the list being filled, while one is
_THREAD = [0]


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _AUDITED and threading.get_ident() == _THREAD[0]:
        _AUDITED[-1].append(event if event != "import" else f"import {args[0]}")


@contextlib.contextmanager
def audited() -> Iterator[list[str]]:
    if not _THREAD[0]:
        sys.addaudithook(_audit)  # for the rest of the process (hooks cannot be removed); idle outside this
    seen: list[str] = []
    _THREAD[0] = threading.get_ident()
    _AUDITED.append(seen)
    try:
        yield seen
    finally:
        _AUDITED.pop()


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """Memory capped above the current size, and a watchdog for hangs."""
    limited = sys.platform == "linux"
    if limited:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        pages = int(Path("/proc/self/statm").read_text().split()[0])
        cap = pages * resource.getpagesize() + MEMORY_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    faulthandler.dump_traceback_later(HANG_AFTER_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        if limited:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --- one expression ------------------------------------------------------------------------------


def sandbox_faults(fn: Callable[..., object]) -> list[str]:
    """What the compiled code could reach besides the expression functions."""
    faults = []
    code = fn.__code__
    scope = fn.__globals__
    for instruction in dis.get_instructions(code):
        if any(word in instruction.opname for word in FORBIDDEN_OPS):
            faults.append(f"bytecode {instruction.opname} {instruction.argval!r}")
        if instruction.opname == "LOAD_GLOBAL":
            name = str(instruction.argval)
            if name not in scope or not name.startswith(("_f_", "_g_")):
                faults.append(f"global {name!r}")
    if any(hasattr(const, "co_code") for const in code.co_consts):
        faults.append("a nested function")
    if set(scope["__builtins__"]) != {"__import__"}:
        faults.append(f"builtins {sorted(scope['__builtins__'])}")
    return faults


def plain(value: object, depth: int = 0) -> bool:
    if depth > 100 or not isinstance(value, PLAIN):
        return False
    if isinstance(value, dict):
        return all(plain(k, depth + 1) and plain(v, depth + 1) for k, v in list(value.items())[:50])
    if isinstance(value, (list, tuple)):
        return all(plain(v, depth + 1) for v in value[:50])
    return True


def evaluation_faults(fn: Callable[[object], object], argument: object) -> list[str]:
    with audited() as seen:
        try:
            result = fn(argument)
        except CLEAN as exc:
            described = describe_error(exc)
            if described.startswith("unexpected error") or "\n" in described or not described:
                return [f"{type(exc).__name__} described as {described!r}"]
            return [f"audit events {seen}"] if seen else []
        except MemoryError:
            return ["MemoryError: a result too large was built (no guard refused it)"]
        except Exception as exc:  # an unclean failure: the property under test
            return [f"{type(exc).__name__}: {str(exc)[:200]}"]
    faults = [f"audit events {seen}"] if seen else []
    if not plain(result):
        faults.append(f"result is {type(result).__name__}, not plain data")
    return faults


def expression_faults(source: str, compiler: ExprCompiler) -> list[str]:
    faults: list[str] = []
    errors = check(source)
    for error in errors:
        if error.kind not in KINDS or error.line < 0 or error.column < 0 or not error.message:
            faults.append(f"checker error {error}")
    refused_as_unsafe = any(e.kind in (FORBIDDEN, PRIVATE_NAME, UNKNOWN_FUNCTION) and "nested" not in e.message
                            for e in errors)
    deep = any("nested" in e.message or "longer than" in e.message for e in errors)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compiled = compiler.value(source, "fuzz")
        except ValueError as exc:
            compiled = None
            if not errors:
                faults.append(f"the checker accepts it, the compiler refuses: {exc}")
        except RecursionError:
            compiled = None
            if not deep:
                faults.append("RecursionError compiling an expression the checker does not find too deep")
    if caught and not errors:
        faults.append(f"compiling warned: {caught[0].message}")
    if compiled is None:
        return faults
    if refused_as_unsafe:
        faults.append(f"compiled what the checker refuses as unsafe: {[e.message for e in errors]}")
    faults += sandbox_faults(compiled.fn)
    for event in EVENTS:
        faults += evaluation_faults(compiled.fn, event)
    if not check(source, scope=("i",)):  # as a generate field
        make = compiler.generator({"x": source})
        for index in (0, 7, -1, 10 ** 6):
            faults += evaluation_faults(make, index)
    if not check(source, aggregate=True):  # as an aggregate field
        _, argument = compiler.aggregate_call(source, "fuzz")
        if argument is not None:
            faults += sandbox_faults(argument.fn)
            for event in EVENTS:
                faults += evaluation_faults(argument.fn, event)
    return faults


GRAPH = """version: 2
name: fuzz
nodes:
  src:
    type: generate
    with: {{count: 1, fields: {{x: {0}}}}}
  m:
    type: map
    from: src
    with:
      set: {{y: {0}}}
  f:
    type: filter
    from: m
    with: {{where: {0}}}
  agg:
    type: aggregate
    from: f
    with: {{fields: {{z: {0}}}}}
  out: {{type: stdout, from: agg}}
"""


def loaded_faults(source: str, registry) -> list[str]:
    text = GRAPH.format(json.dumps(source, ensure_ascii=len(source) % 2 == 0))
    result = load_text("fuzz.yaml", text, registry, {})
    lines = len(text.splitlines())
    return [f"{p.code} at {p.line}:{p.column}" for p in result.problems
            if p.code not in CODES or not 1 <= p.line <= lines or p.column < 1]


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS), ids=ids)
def test_generated_expressions_stay_in_the_sandbox_and_fail_cleanly(registry, shard):
    compiler = ExprCompiler(random.Random(0), ManualClock(1_700_000_000.0))
    functions.parse_time("2026-01-01", "%Y-%m-%d")  # imports strptime's modules before auditing starts
    failures: list[str] = []
    with bounded():
        for index in range(PER_SHARD):
            source = fuzz_exprs.case(SEED, shard, index)
            try:
                faults = expression_faults(source, compiler)
                if index % LOADED_EVERY == 0:
                    faults += loaded_faults(source, registry)
            except Exception as exc:  # anything escaping the checker or the compiler
                faults = [f"{type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc)[-3:])}"]
            if faults:
                failures.append(f"{source[:200]!r} (case {shard}/{index}): {faults[:3]}")
            if len(failures) >= 5:
                break
    assert not failures, (f"seed {SEED} ({fuzz_docs.SEED_ENV}={SEED} replays it; case a/b is "
                          f"tests.fuzz_exprs.case({SEED}, a, b)):\n" + "\n".join(failures))


# --- what the fuzzing found, one test each -------------------------------------------------------


def evaluate(source: str, event: dict[str, object] | None = None) -> object:
    assert check(source) == [], source
    return ExprCompiler(random.Random(0), ManualClock(0.0)).value(source, "t").fn(event or {})


@pytest.mark.parametrize("source", [
    "len(str([[0] * 10 ** 7] * 10 ** 7))",  # 10**14 items: comparing them would never end either
    "len(str([['x' * 1000] * 1000] * 1000))",  # 10**9 characters
    "[[[0] * 1000] * 1000] * 1000",
    "[xs] * 10 ** 4 * 10",  # an event's list, repeated inside a list
])
def test_repeating_nested_lists_counts_their_items(source):
    """`*` limits the items of its result, nested ones included, before building it. (Under
    the memory cap: without the check, the text of such a list fails as MemoryError.)"""
    with bounded(), pytest.raises(ExprLimitError) as info:
        evaluate(source, {"xs": list(range(1000))})
    assert describe_error(info.value) == "repeating with * would give more than 10,000,000 items"


def test_repeating_nested_lists_within_the_limit_works():
    assert evaluate("len([[0] * 1000] * 1000)") == 1000
    assert evaluate("[[1, 2]] * 3") == [[1, 2], [1, 2], [1, 2]]
    assert evaluate("len(xs * 2)", {"xs": list(range(10 ** 6))}) == 2 * 10 ** 6


def test_weight_stops_counting_past_its_budget():
    huge = [[0] * 10 ** 6] * 10 ** 3  # 10**9 nested items, 10**3 of them visited at most
    assert functions.weight(huge, 5 * 10 ** 6) <= 6 * 10 ** 6 + 10 ** 3
    assert functions.weight(["ab", ("c",), {"k": [1, 2]}], 10 ** 6) == 3 + 2 + 1 + 1 + 1 + 2 + 1 + 2


def test_join_refuses_a_separator_repeated_into_a_huge_text():
    with pytest.raises(ExprLimitError) as info:
        evaluate("join([0] * 10 ** 7, 'x' * 10 ** 7)")
    assert "separator" in describe_error(info.value)
    assert evaluate("join(['a', 'b'], 'x' * 10 ** 6)") == "a" + "x" * 10 ** 6 + "b"


def test_parse_time_with_a_field_named_twice_is_a_clean_error():
    """`%d%d` made strptime's regular expression invalid: re.error escaped, described as an
    unexpected error."""
    with pytest.raises(ExprValueError) as info:
        evaluate("parse_time('1', '%d%d')")
    assert describe_error(info.value) == "parse_time() text does not match the format"


def test_compiling_warns_nothing_even_under_warnings_as_errors():
    """Python's compiler warns about `is` with a literal and a float index into a literal
    list; under `-W error` the warning was a SyntaxError when a node was built."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate("x is 'a'", {"x": 1}) is False
        assert evaluate("[1, 2][0.5] if x else 0", {"x": 0}) == 0


def test_the_memory_cap_turns_a_result_too_large_into_a_memory_error():
    """The fuzz test's own guard works: under `bounded()`, building far more than the
    headroom fails fast instead of taking the machine."""
    if sys.platform != "linux":
        pytest.skip("RLIMIT_AS is only enforced on Linux")
    with bounded(), pytest.raises(MemoryError):
        bytearray(MEMORY_HEADROOM + (1 << 30))
