"""The repository keeps its promises: layout, README commands, CI entry point."""

from tests.conftest import ROOT


def test_layout():
    for folder in ("schema", "loader", "engine", "adapters", "graphs", "migrations", "tests", "docs", "bench"):
        assert (ROOT / folder).is_dir(), folder


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    lines = (ROOT / "README.md").read_text().splitlines()
    fence = lines.index("```bash")
    install_and_run, install_and_test = lines[fence + 1], lines[fence + 2]
    assert "pip install ." in install_and_run and "engine validate graphs/" in install_and_run
    assert "engine serve graphs/" in install_and_run
    assert "pytest" in install_and_test
    assert install_and_test in (ROOT / ".ci/run").read_text().splitlines()


def test_engine_core_does_not_import_loader_or_adapters():
    for path in (ROOT / "engine").rglob("*.py"):
        text = path.read_text()
        assert "import loader" not in text and "from loader" not in text, path
        assert "import adapters" not in text and "from adapters" not in text, path


def test_loader_does_not_import_adapters():
    for path in (ROOT / "loader").rglob("*.py"):
        text = path.read_text()
        assert "from adapters" not in text and "import adapters" not in text, path
