"""Typed expressions (kernel_expr) to OpenCL C that computes exactly what numpy_backend does.

`Emitter.value` turns a typed tree into a pure C expression, writing any step that can fail
(division, floor division, modulo, pow, checked math functions) as a statement into a
temporary first. Operands are therefore evaluated left to right, parents after children:
NumPy's post-order, so a row with two errors in one expression gets the same (first) code.
`and`, `or` and `?:` evaluate the operand that may fail inside an `if`, so an operand that
does not decide the result raises nothing, as NumPy's `active` masks do.

Integer `+ - *` and negation go through unsigned arithmetic: signed overflow is undefined in
C, and NumPy wraps. Helper functions (`helpers()`) exist once per C type actually used.
"""

import re
from collections.abc import Callable
from typing import Final

import numpy as np

from adapters.gpu.dtypes import BOOL, C_TYPES, FLOAT32, FLOAT64, INT32, INT64, NUMPY_TYPES, is_float, is_int
from adapters.gpu.kernel_expr import (
    CHECKED,
    FLOAT_ONE,
    FLOAT_TWO,
    Binary,
    Call,
    Cast,
    Col,
    Compare,
    Const,
    Logic,
    Node,
    Select,
    Unary,
)
from adapters.gpu.program import DIVISION_BY_ZERO, UNDEFINED

_UNSIGNED: Final = {INT32: "uint", INT64: "ulong"}
_BITS: Final = {INT32: 32, INT64: 64}
_COMPARE: Final = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_ARITH: Final = {"add": "+", "sub": "-", "mul": "*"}
_FLOAT_BUILTINS: Final = FLOAT_ONE | FLOAT_TWO  # OpenCL C has each under the same name

# Words a user kernel cannot use as a variable name: C99 and OpenCL C keywords and types.
_VECTOR: Final = re.compile(r"(u?char|u?short|u?int|u?long|float|double|half)(2|3|4|8|16)")
C_RESERVED: Final = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while bool true false uchar ushort uint ulong half size_t ptrdiff_t intptr_t uintptr_t
kernel global local constant private generic read_only write_only read_write uniform pipe
image1d_t image2d_t image3d_t image1d_array_t image1d_buffer_t image2d_array_t sampler_t event_t
complex imaginary _Bool _Complex _Imaginary NULL INFINITY NAN
""".split())  # noqa: SIM905 (a word list reads best as words)
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_c_identifier(name: str) -> bool:
    """Whether a column name can be a C variable as it is (for user kernels' inputs and outputs)."""
    return (_IDENTIFIER.fullmatch(name) is not None and name not in C_RESERVED
            and _VECTOR.fullmatch(name) is None and not name.startswith("__"))


def literal(value: object, dtype: str) -> str:
    """A C literal of exactly the value NumPy stores for `np.full(n, value, dtype)`."""
    if dtype == BOOL:
        return "(uchar)1" if value else "(uchar)0"
    if is_float(dtype):
        with np.errstate(over="ignore"):
            stored = float(np.float32(value)) if dtype == FLOAT32 else float(value)  # type: ignore[arg-type]
        suffix = "f" if dtype == FLOAT32 else ""
        if stored in (float("inf"), float("-inf")):  # a float64 literal beyond float32's range
            return f"({'-' if stored < 0 else ''}({C_TYPES[dtype]})INFINITY)"
        # The shortest decimal that reads back as the same value in its own type: the compiler
        # rounds it to the bits NumPy has (float32 rounded once, from the double, as NumPy does).
        text = (str(np.float32(stored)) if dtype == FLOAT32 else repr(stored)) + suffix
        return f"({text})" if stored < 0 or text.startswith("-") else text
    bits = _BITS[dtype]
    number = int(value) & ((1 << bits) - 1)  # type: ignore[call-overload]
    number = number - (1 << bits) if number >= 1 << (bits - 1) else number
    suffix = "L" if dtype == INT64 else ""
    if number == -(1 << (bits - 1)):  # -2147483648 would be a long: minus applied to 2147483648
        return f"(-{(1 << (bits - 1)) - 1}{suffix} - 1{suffix})"
    return f"({number}{suffix})" if number < 0 else f"{number}{suffix}"


def _numpy_float_to_int() -> dict[tuple[str, str], tuple[int, int, int]]:
    """What NumPy's astype gives for NaN, too large and too small (C leaves these undefined;
    x86 gives the minimum for all three, ARM saturates), so the kernel gives the same."""
    out: dict[tuple[str, str], tuple[int, int, int]] = {}
    with np.errstate(all="ignore"):
        for src in (FLOAT32, FLOAT64):
            for dst in (INT32, INT64):
                probe = np.array([np.nan, np.inf, -np.inf], dtype=NUMPY_TYPES[src]).astype(NUMPY_TYPES[dst])
                out[(src, dst)] = (int(probe[0]), int(probe[1]), int(probe[2]))
    return out


_FLOAT_TO_INT: Final = _numpy_float_to_int()


class Emitter:
    """Emits statements into `lines` and returns pure C expressions. `resolve` maps a column
    to the C expression holding its current value; `err` is the row's error variable."""

    def __init__(self, resolve: Callable[[str], str], temps: list[int], err: str = "err") -> None:
        self.resolve = resolve
        self.temps = temps  # a one-element counter shared by every emitter of a kernel
        self.err = err
        self.lines: list[str] = []
        self.helpers: set[tuple[str, str]] = set()  # (helper kind, dtype)

    def temp(self, dtype: str, value: str) -> str:
        self.temps[0] += 1
        name = f"t_{self.temps[0]}"
        self.lines.append(f"{C_TYPES[dtype]} {name} = {value};")
        return name

    def checked(self, helper: str, dtype: str, args: str, code: int) -> str:
        self.helpers.add((helper, dtype))
        return self.temp(dtype, f"hr_{helper}_{C_TYPES[dtype]}({args}, &{self.err}, {code}u)")

    def nested(self, node: Node, code: int) -> tuple[list[str], str]:
        """Statements and value of an operand evaluated only on some rows."""
        outer, self.lines = self.lines, []
        value = self.value(node, code)
        inner, self.lines = self.lines, outer
        return inner, value

    def value(self, node: Node, code: int) -> str:
        if isinstance(node, Col):
            return self.resolve(node.name)
        if isinstance(node, Const):
            return literal(node.value, node.dtype)
        if isinstance(node, Cast):
            return self.cast(self.value(node.x, code), node.x.dtype, node.dtype)
        if isinstance(node, Unary):
            x = self.value(node.x, code)
            if node.op == "not":
                return f"(uchar)(!{x})"
            return _wrap(node.dtype, "0", "-", x) if is_int(node.dtype) else f"(-{x})"
        if isinstance(node, Binary):
            return self.binary(node, code)
        if isinstance(node, Compare):
            a, b = self.value(node.a, code), self.value(node.b, code)
            return f"(uchar)({a} {_COMPARE[node.op]} {b})"
        if isinstance(node, Logic):
            return self.logic(node, code)
        if isinstance(node, Select):
            return self.select(node, code)
        assert isinstance(node, Call)
        return self.call(node, code)

    def cast(self, x: str, src: str, dst: str) -> str:
        if src == dst:
            return x
        if dst == BOOL:  # NumPy's astype(bool): not zero
            return f"(uchar)({x} != 0)"
        if is_float(src) and is_int(dst):
            self.helpers.add((f"to_{C_TYPES[dst]}", src))
            return f"hr_to_{C_TYPES[dst]}_{C_TYPES[src]}({x})"
        return f"(({C_TYPES[dst]})({x}))"

    def binary(self, node: Binary, code: int) -> str:
        a, b = self.value(node.a, code), self.value(node.b, code)
        op, dtype = node.op, node.dtype
        if op in _ARITH:
            return _wrap(dtype, a, _ARITH[op], b) if is_int(dtype) else f"({a} {_ARITH[op]} {b})"
        if op == "pow":
            self.helpers.add(("chk", dtype))
            return self.temp(dtype, f"hr_chk_{C_TYPES[dtype]}(pow({a}, {b}), &{self.err}, {code + UNDEFINED}u)")
        return self.checked(op, dtype, f"{a}, {b}", code + DIVISION_BY_ZERO)

    def logic(self, node: Logic, code: int) -> str:
        a = self.value(node.a, code)
        inner, b = self.nested(node.b, code)
        symbol = "&&" if node.op == "and" else "||"
        if not inner:
            return f"(uchar)({a} {symbol} {b})"
        result = self.temp(BOOL, f"(uchar)({a} != 0)")
        test = result if node.op == "and" else f"!{result}"
        self.lines += [f"if ({test}) {{", *_indent(inner), f"    {result} = {b};", "}"]
        return result

    def select(self, node: Select, code: int) -> str:
        cond = self.value(node.cond, code)
        inner_a, a = self.nested(node.a, code)
        inner_b, b = self.nested(node.b, code)
        if not inner_a and not inner_b:
            return f"({cond} ? {a} : {b})"
        self.temps[0] += 1
        result = f"t_{self.temps[0]}"
        self.lines += [f"{C_TYPES[node.dtype]} {result} = 0;", f"if ({cond}) {{", *_indent(inner_a),
                       f"    {result} = {a};", "} else {", *_indent(inner_b), f"    {result} = {b};", "}"]
        return result

    def call(self, node: Call, code: int) -> str:
        args = [self.value(a, code) for a in node.args]
        fn, dtype = node.fn, node.dtype
        ctype = C_TYPES[dtype]
        floating = is_float(dtype)
        if fn in _FLOAT_BUILTINS:
            text = f"{fn}({', '.join(args)})"
            if fn in CHECKED:
                self.helpers.add(("chk", dtype))
                return self.temp(dtype, f"hr_chk_{ctype}({text}, &{self.err}, {code + UNDEFINED}u)")
            return text
        if fn == "abs":  # OpenCL's integer abs is unsigned: abs(INT_MIN) casts back to INT_MIN, as NumPy
            return f"fabs({args[0]})" if floating else f"(({ctype})abs({args[0]}))"
        if fn in ("floor", "ceil", "round"):
            return f"{'rint' if fn == 'round' else fn}({args[0]})" if floating else args[0]
        if fn == "clamp":  # never OpenCL's clamp, undefined when lo > hi
            return self.extreme("min", dtype, self.extreme("max", dtype, args[0], args[1]), args[2])
        result = args[0]
        for other in args[1:]:
            result = self.extreme(fn, dtype, result, other)
        return result

    def extreme(self, fn: str, dtype: str, a: str, b: str) -> str:
        if not is_float(dtype):
            return f"{fn}({a}, {b})"
        self.helpers.add((fn, dtype))  # NaN-propagating, as np.minimum/np.maximum (fmin is not)
        return f"hr_{fn}_{C_TYPES[dtype]}({a}, {b})"



def _wrap(dtype: str, a: str, op: str, b: str) -> str:
    """Integer arithmetic that wraps around like NumPy's (signed overflow is undefined in C)."""
    unsigned = _UNSIGNED[dtype]
    return f"(({C_TYPES[dtype]})(({unsigned})({a}) {op} ({unsigned})({b})))"


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


_FLOAT_HELPERS: Final = {
    "chk": """T hr_chk_T(T v, __private uint* err, uint code) {
    if (*err == 0u && !isfinite(v)) *err = code;
    return v;
}""",
    "div": """T hr_div_T(T a, T b, __private uint* err, uint code) {
    if (b == 0) { if (*err == 0u) *err = code; return 0; }
    return a / b;
}""",
    # CPython's float floor division and modulo, which NumPy's floor_divide and remainder copy.
    "floordiv": """T hr_floordiv_T(T a, T b, __private uint* err, uint code) {
    if (b == 0) { if (*err == 0u) *err = code; return 0; }
    T mod = fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1;
    if (div != 0) {
        T fl = floor(div);
        if (div - fl > HALF) fl += 1;
        return fl;
    }
    return copysign(ZERO, a / b);
}""",
    "mod": """T hr_mod_T(T a, T b, __private uint* err, uint code) {
    if (b == 0) { if (*err == 0u) *err = code; return 0; }
    T mod = fmod(a, b);
    if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; }
    else mod = copysign(ZERO, b);
    return mod;
}""",
    "min": "T hr_min_T(T a, T b) { return isnan(a) ? a : isnan(b) ? b : (a < b ? a : b); }",
    "max": "T hr_max_T(T a, T b) { return isnan(a) ? a : isnan(b) ? b : (a > b ? a : b); }",
}

_INT_HELPERS: Final = {
    # Python floors; b == -1 is apart because INT_MIN / -1 traps in C (NumPy wraps it).
    "floordiv": """T hr_floordiv_T(T a, T b, __private uint* err, uint code) {
    if (b == 0) { if (*err == 0u) *err = code; return 0; }
    if (b == -1) return (T)((U)0 - (U)a);
    T q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}""",
    "mod": """T hr_mod_T(T a, T b, __private uint* err, uint code) {
    if (b == 0) { if (*err == 0u) *err = code; return 0; }
    if (b == -1) return 0;
    T r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}""",
}


def _to_int(src: str, dst: str) -> str:
    nan, high, low = _FLOAT_TO_INT[(src, dst)]
    limit = f"{float(1 << (_BITS[dst] - 1))!r}{'f' if src == FLOAT32 else ''}"
    s, d = C_TYPES[src], C_TYPES[dst]
    return (f"{d} hr_to_{d}_{s}({s} x) {{\n"
            f"    if (isnan(x)) return {literal(nan, dst)};\n"
            f"    if (x >= {limit}) return {literal(high, dst)};\n"
            f"    if (x < -{limit}) return {literal(low, dst)};\n"
            f"    return ({d})x;\n}}")


def helpers(used: set[tuple[str, str]]) -> str:
    """The definitions of the helpers an emitter used, in a fixed order (the source is a cache key)."""
    out = []
    for kind, dtype in sorted(used):
        if kind.startswith("to_"):
            dst = next(t for t in (INT32, INT64) if C_TYPES[t] == kind[3:])
            out.append(_to_int(dtype, dst))
            continue
        table = _FLOAT_HELPERS if is_float(dtype) else _INT_HELPERS
        suffix = "f" if dtype == FLOAT32 else ""
        text = table[kind].replace("T ", C_TYPES[dtype] + " ").replace("(T)", f"({C_TYPES[dtype]})")
        text = text.replace("HALF", "0.5" + suffix).replace("ZERO", "0.0" + suffix)
        text = text.replace("hr_" + kind + "_T", f"hr_{kind}_{C_TYPES[dtype]}")
        out.append(text.replace("(U)", f"({_UNSIGNED.get(dtype, '')})"))
    return "\n".join(out)
