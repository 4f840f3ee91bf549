import os
from pathlib import Path
from typing import Any

import pytest

from adapters.cli.main import run
from adapters.cli.registry import default_registry
from engine.spec import SpecRegistry

ROOT = Path(__file__).resolve().parents[1]

# Fixtures that start real servers (PostgreSQL, Redis, NATS, Mosquitto) for connector tests.
pytest_plugins = ["tests.servers"]

# -- CI cannot skip ----------------------------------------------------------------------------
# A test that needs a tool, a device or a server the machine lacks skips with the reason on a
# developer's machine. Under CI=true (what CI services set, and .ci/run) every skip fails the
# run with that reason instead, unless its reason is listed here with why CI expects it.
CI_SKIPS_ALLOWED: dict[str, str] = {
    "linted in the interpreted run; the source is the same":
        "tests/test_lint.py runs ruff and mypy once, in .ci/run's interpreted run",
    "Ray tests run once, in the compiled build":
        "tests/ray_support.py: Ray clusters are slow to start; the stage code they run is the same, "
        "and the local executor runs it in both builds",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(available: object, why: str) -> None:
    """Go on when `available` is true; otherwise skip, saying what is missing and how to get
    it (`why`). Under CI=true the skip fails the run (see `pytest_runtest_makereport`)."""
    if not available:
        pytest.skip(why, allow_module_level=True)


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def _fail_skip_in_ci(report: Any) -> None:
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason in CI_SKIPS_ALLOWED:
        return
    report.outcome = "failed"
    report.longrepr = (f"CI=true, and CI may not skip: {reason} (install what is missing; a skip CI expects "
                       f"is listed, with why, in CI_SKIPS_ALLOWED in tests/conftest.py)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A whole module skipped (pytest.importorskip, a module-level skip) fails CI too."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


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


# The broken graph-test corpus is run by tests/test_invalid_test_files.py; the pytest plugin
# of the installed package would otherwise collect its files as (failing) graph tests.
collect_ignore_glob = ["graphs/invalid_tests/*"]
