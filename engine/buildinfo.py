"""Whether this engine runs compiled (mypyc) or interpreted, for `engine --version`."""

import importlib.machinery
import importlib.util

from engine.compiled_modules import COMPILED


def _is_extension(module_name: str) -> bool:
    """Whether the module is (or, not yet imported, would be) loaded from a native extension;
    `find_spec` answers for an imported module from the module itself and runs no module code."""
    spec = importlib.util.find_spec(module_name)
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The modules of `COMPILED` that were loaded from native extensions."""
    return [name for name in COMPILED if _is_extension(name)]


def is_compiled() -> bool:
    """True when every module the build compiles was loaded from a native extension."""
    return len(compiled_modules()) == len(COMPILED)


def mode() -> str:
    """`compiled`, `interpreted`, or `mixed` (some modules compiled: a broken or stale build)."""
    count = len(compiled_modules())
    if count == len(COMPILED):
        return "compiled"
    if count == 0:
        return "interpreted"
    return f"mixed: {count} of {len(COMPILED)} modules compiled"
