"""Build step only: compiles the engine core with mypyc. The metadata is in pyproject.toml.

The modules compiled are listed in engine/compiled_modules.py (with the reason for each one
left out); `engine --version` checks the same list. HEADRACE_MYPYC=0 builds a pure-Python
package from the same source, which runs interpreted.
"""

import os
import runpy

from setuptools import setup


def _ext_modules() -> list:
    if os.environ.get("HEADRACE_MYPYC", "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    from mypyc.build import mypycify

    compiled = runpy.run_path(os.path.join("engine", "compiled_modules.py"))["COMPILED"]
    # One C extension for the whole group (the default): on two cores the build, type check
    # included, takes well under a minute at opt_level 3, so neither `multi_file` nor
    # `separate` is needed.
    return mypycify([name.replace(".", "/") + ".py" for name in compiled], opt_level="3")


setup(ext_modules=_ext_modules())
