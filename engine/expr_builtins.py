"""The `__builtins__` of compiled expressions: nothing an expression could name.

Kept apart from `engine.functions` (the functions expressions call) because it is about
the namespace expressions run in, not about anything they compute.
"""

import importlib
from typing import Final

# datetime's strftime and strptime are C code that imports `time` and `_strptime` on every
# call, through the `__import__` of the innermost Python frame's builtins. Compiled with
# mypyc, `engine.functions.format_time` and `parse_time` have no frame of their own, so that
# frame is the expression's; its builtins hold only this importer, which allows just those modules.
_LAZY_IMPORTS: Final = frozenset({"time", "_strptime"})


def lazy_import(
    name: str, caller_globals: object = None, caller_locals: object = None, fromlist: object = (), level: int = 0
) -> object:
    if level == 0 and name in _LAZY_IMPORTS:
        return importlib.import_module(name)
    raise ImportError(f"expressions cannot import {name}")


def expression_builtins() -> dict[str, object]:
    """The `__builtins__` of compiled expressions: no names an expression could use."""
    return {"__import__": lazy_import}
