import os
from pathlib import Path

import pytest

from adapters.cli.main import run
from adapters.cli.registry import default_registry
from engine.spec import SpecRegistry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry() -> SpecRegistry:
    return default_registry()


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `engine ARGS` in-process from the repository root; return (exit, stdout, stderr)."""
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith("HEADRACE_TEST_UNSET_"):
            monkeypatch.delenv(name)

    def invoke(*args: str) -> tuple[int, str, str]:
        try:
            code = run(list(args))
        except SystemExit as exc:  # argparse usage errors and --version
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
