"""Whether this engine runs compiled (mypyc) or interpreted, for `engine --version`."""

import importlib.machinery

import engine.plan


def is_compiled() -> bool:
    """True when the core modules were loaded from native extensions."""
    path = engine.plan.__file__ or ""
    return any(path.endswith(suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def mode() -> str:
    return "compiled" if is_compiled() else "interpreted"
