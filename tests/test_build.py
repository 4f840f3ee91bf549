"""The engine runs the way it was built: every listed module compiled with mypyc, or none.

CI sets HEADRACE_EXPECT_MODE (`compiled` or `interpreted`) for each of its two runs, so a
run that was meant to test the compiled engine fails if it is really testing the source.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import buildinfo
from engine.compiled_modules import COMPILED
from tests.conftest import ROOT

MODES = ("compiled", "interpreted")


def test_engine_runs_in_the_mode_this_run_expects():
    expected = os.environ.get("HEADRACE_EXPECT_MODE")
    if expected is None:
        pytest.skip("HEADRACE_EXPECT_MODE is not set (CI sets it to compiled or interpreted)")
    assert expected in MODES, f"HEADRACE_EXPECT_MODE must be one of {MODES}, not {expected!r}"
    assert buildinfo.mode() == expected, (
        f"expected the {expected} engine; build with HEADRACE_MYPYC=0 for interpreted, without it for compiled"
    )


def test_all_listed_modules_or_none_are_compiled():
    assert buildinfo.mode() in MODES, buildinfo.mode()


def test_compiled_list_names_every_engine_module_or_gives_a_reason():
    documented = (ROOT / "engine" / "compiled_modules.py").read_text()
    for name in COMPILED:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), f"{name} is listed but has no source"
    for path in sorted((ROOT / "engine").glob("*.py")):
        name = f"engine.{path.stem}"
        assert name in COMPILED or f"`engine/{path.name}`" in documented, (
            f"{name} is neither compiled nor listed with a reason in engine/compiled_modules.py"
        )


def test_engine_version_reports_the_mode_of_the_engine_under_test(tmp_path):
    """The installed `engine` command and the engine these tests import are one build."""
    script = Path(sys.executable).parent / "engine"
    if not script.exists():
        pytest.skip("the engine command is not installed next to this Python")
    result = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"({buildinfo.mode()}," in result.stdout, result.stdout


def test_compiled_modules_are_not_older_than_their_source():
    """An in-place (editable) build shadows the .py files: editing engine/ needs a rebuild."""
    stale = []
    for name in COMPILED:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        source = ROOT / (name.replace(".", "/") + ".py")
        compiled = origin is not None and origin.suffix != ".py" and origin.parent == source.parent
        if compiled and source.stat().st_mtime > origin.stat().st_mtime:
            stale.append(source.name)
    assert not stale, (
        f"engine/{', engine/'.join(stale)} changed after the compiled build, which still runs; "
        "rebuild with `pip install -e '.[dev]'`, or build with HEADRACE_MYPYC=0 to run the source"
    )
