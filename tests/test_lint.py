"""The linters as part of the suite: any ruff finding or mypy error fails CI, with the findings.

Both read their configuration from pyproject.toml ([tool.ruff], [tool.mypy]); running `ruff
check .` or `mypy` by hand gives the same answer. mypy keeps its cache in .mypy_cache, so a
run after a small change takes seconds (a cold one, under a minute).

They run once, in the interpreted build: the source is the same in both, and the mypyc build
has already type-checked engine/ before the compiled run starts.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.lint,
    pytest.mark.skipif(os.environ.get("HEADRACE_EXPECT_MODE") == "compiled",
                       reason="linted in the interpreted run; the source is the same"),
]

ROOT = Path(__file__).resolve().parents[1]
LINT_TIMEOUT_S = 600


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=LINT_TIMEOUT_S, check=False)


def test_ruff_finds_nothing():
    done = _run("ruff", "check", "--output-format", "concise", "--no-cache", ".")
    if done.returncode != 0:
        pytest.fail(f"ruff check . (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)


def test_mypy_strict_finds_nothing():
    done = _run("mypy")
    if done.returncode != 0:
        pytest.fail(f"mypy (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)
