"""Build step only: compiles the engine core with mypyc. The metadata is in pyproject.toml.

The modules compiled are listed in engine/compiled_modules.py (with the reason for each one
left out); `engine --version` checks the same list. HEADRACE_MYPYC=0 builds a pure-Python
package from the same source, which runs interpreted.
"""

import glob
import os
import runpy
from importlib.machinery import EXTENSION_SUFFIXES

from setuptools import setup

COMPILED = runpy.run_path(os.path.join("engine", "compiled_modules.py"))["COMPILED"]


def _remove_in_place_modules() -> None:
    """An earlier editable build left native modules next to the source; Python would still
    import them instead of the .py files."""
    for suffix in EXTENSION_SUFFIXES:
        paths = [name.replace(".", "/") + suffix for name in COMPILED] + glob.glob("*__mypyc" + suffix)
        for path in paths:
            if os.path.exists(path):
                os.remove(path)


def _ext_modules() -> list:
    if os.environ.get("HEADRACE_MYPYC", "1").strip().lower() in ("0", "false", "no", "off"):
        _remove_in_place_modules()
        return []
    from mypyc.build import mypycify

    # One shared C extension for the whole group (the default), at opt_level 3: about 20 s on
    # two cores, type check included. `multi_file` saves a second or two, `separate` doubles
    # the time, opt_level 0 saves about 8 s and loses the C optimiser: none is worth it.
    return mypycify([name.replace(".", "/") + ".py" for name in COMPILED], opt_level="3")


setup(ext_modules=_ext_modules())
