"""Column types of GPU segments and how they combine.

Five types, named as users write them in `columns:`. The rules are NumPy's with one
difference that keeps GPUs fast: mixing an integer with a float gives the float's own type
(`int64 * float32` is float32, not float64), and a literal number takes the type of what
it meets (`x * 1.5` keeps `x`'s float32). Where nothing decides, a segment uses its
default float and integer types: the widest declared, else float32 and int32.
"""

from dataclasses import dataclass
from typing import Final

BOOL: Final = "bool"
INT32: Final = "int32"
INT64: Final = "int64"
FLOAT32: Final = "float32"
FLOAT64: Final = "float64"
DTYPES: Final = (FLOAT32, FLOAT64, INT32, INT64, BOOL)

C_TYPES: Final = {BOOL: "uchar", INT32: "int", INT64: "long", FLOAT32: "float", FLOAT64: "double"}
# bool columns are stored as one byte per value on the device and in NumPy.
NUMPY_TYPES: Final = {BOOL: "bool", INT32: "int32", INT64: "int64", FLOAT32: "float32", FLOAT64: "float64"}
INT_RANGE: Final = {INT32: (-(1 << 31), (1 << 31) - 1), INT64: (-(1 << 63), (1 << 63) - 1)}  # (lowest, highest)
_WIDTH: Final = {BOOL: 1, INT32: 4, INT64: 8, FLOAT32: 4, FLOAT64: 8}


def is_float(dtype: str) -> bool:
    return dtype in (FLOAT32, FLOAT64)


def is_int(dtype: str) -> bool:
    return dtype in (INT32, INT64)


def wider(a: str, b: str) -> str:
    return a if _WIDTH[a] >= _WIDTH[b] else b


@dataclass(frozen=True)
class Defaults:
    """The types a segment uses where its expressions do not decide one."""

    float_type: str = FLOAT32
    int_type: str = INT32

    @staticmethod
    def of(columns: dict[str, str]) -> "Defaults":
        floats = [t for t in columns.values() if is_float(t)]
        ints = [t for t in columns.values() if is_int(t)]
        return Defaults(FLOAT64 if FLOAT64 in floats else FLOAT32, INT64 if INT64 in ints else INT32)


@dataclass(frozen=True)
class Kind:
    """A typed value while checking: its type, and whether it is a literal that adapts."""

    dtype: str
    weak: bool = False


def numeric(kind: Kind, defaults: Defaults) -> Kind:
    """A bool used as a number counts as the default integer (True + True is 2)."""
    return Kind(defaults.int_type, kind.weak) if kind.dtype == BOOL else kind


def common(a: Kind, b: Kind, defaults: Defaults) -> Kind:
    """The type two numbers are computed in."""
    a, b = numeric(a, defaults), numeric(b, defaults)
    if a.weak and b.weak:
        return Kind(a.dtype if is_float(a.dtype) or not is_float(b.dtype) else b.dtype, True)
    if a.weak or b.weak:
        strong, weak = (b, a) if a.weak else (a, b)
        if is_float(weak.dtype) and not is_float(strong.dtype):
            return Kind(defaults.float_type)
        return Kind(strong.dtype)
    if is_float(a.dtype) != is_float(b.dtype):
        return Kind(a.dtype if is_float(a.dtype) else b.dtype)
    return Kind(wider(a.dtype, b.dtype))


def as_float(kind: Kind, defaults: Defaults) -> Kind:
    """The float type a float-only operation (`/`, sqrt) computes `kind` in."""
    if is_float(kind.dtype):
        return kind
    return Kind(defaults.float_type, kind.weak)


def concrete(kind: Kind, defaults: Defaults) -> str:
    """A literal-only value's type once it must be stored."""
    if not kind.weak:
        return kind.dtype
    if is_float(kind.dtype):
        return defaults.float_type
    return defaults.int_type if is_int(kind.dtype) else kind.dtype
