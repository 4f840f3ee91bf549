"""The hooks in .pre-commit-hooks.yaml, run by pre-commit itself as a user's repository runs
them: a copy of this checkout becomes a git repository of its own (CI's interpreted run is
a copy without .git), a separate repository of graphs points `repo:` and `rev:` at it, and
pre-commit installs the hooks from it with pip (`pip install .`, from the package index) into
a virtualenv under a PRE_COMMIT_HOME in the test's temporary directory.

The install is the slow part (15 to 20 s with or without pip's cache: the dependencies come
from the package index; HEADRACE_MYPYC=0 leaves the C compile out), so it happens once, in a
module-scoped fixture, for one test function (two could land on two xdist workers and
install twice).
"""

import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, require

pytestmark = pytest.mark.slow

HOOK_IDS = ("headrace-validate", "headrace-migrate-check", "headrace-test")

VALID = """\
version: 2
name: doubling
nodes:
  numbers:
    type: generate
    with:
      count: 3
      fields: {n: i}
  doubled:
    type: map
    from: numbers
    with:
      set: {twice: n * 2}
  out:
    type: stdout
    from: doubled
"""

BROKEN = VALID.replace("name: doubling", "name: broken").replace("from: doubled", "from: dubled")

PASSING_TEST = """\
version: 1
graph: doubling.yaml
tests:
  - name: numbers are doubled
    inputs:
      numbers: [{n: 1}, {n: 2}]
    expect:
      out:
        equals: [{n: 1, twice: 2}, {n: 2, twice: 4}]
"""

FAILING_TEST = PASSING_TEST.replace("numbers are doubled", "doubled wrongly").replace("twice: 4", "twice: 5")


def _clean_env(**extra: str) -> dict[str, str]:
    """No GIT_* from an enclosing git hook (GIT_DIR, GIT_INDEX_FILE would point git at the
    checkout), and nothing from a parent pre-commit run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.pop("SKIP", None)
    env.update(extra)
    return env


def _git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=headrace-tests", "-c", "user.email=tests@headrace.invalid",
                "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", "-c", "core.hooksPath=/dev/null"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def _gitignore_patterns() -> list[str]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return [".git/", *(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))]


def _ignored(relative: Path, is_dir: bool, patterns: list[str]) -> bool:
    """The forms .gitignore uses: `name`, `*.ext`, `name/` (a directory), `a/b/` (anchored)."""
    for pattern in patterns:
        directory_only = pattern.endswith("/")
        body = pattern.rstrip("/")
        if directory_only and not is_dir:
            continue
        if "/" in body:
            if fnmatch.fnmatchcase(relative.as_posix(), body.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(relative.name, body):
            return True
    return False


def _source_files() -> list[Path]:
    """What git tracks or would track, relative to ROOT: from git in a checkout; in a copy
    without .git (CI's interpreted run), the tree less what .gitignore names."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, env=_clean_env(), capture_output=True, check=True, timeout=120).stdout
        return [Path(name) for name in listed.decode().split("\0") if name]
    patterns = _gitignore_patterns()
    found: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT)
        dirs[:] = sorted(d for d in dirs if not _ignored(here / d, True, patterns))
        found.extend(here / f for f in sorted(files) if not _ignored(here / f, False, patterns))
    return found


def _copy_checkout(destination: Path) -> None:
    for relative in _source_files():
        source = ROOT / relative
        if source.is_symlink() or not source.is_file():  # deleted in the working tree, or a link
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@dataclass
class Hooks:
    repo: Path  # the user's repository of graphs
    home: Path  # PRE_COMMIT_HOME
    install_seconds: float

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pre_commit", *args, "--color", "never"], cwd=self.repo,
                              env=_clean_env(PRE_COMMIT_HOME=str(self.home), HEADRACE_MYPYC="0"),
                              capture_output=True, text=True, timeout=600)

    def write(self, name: str, text: str) -> None:
        path = self.repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def engine(self) -> Path:
        """The `engine` command of the virtualenv pre-commit made for the hooks."""
        found = sorted(self.home.glob("*/py_env-*/bin/engine"))
        assert len(found) == 1, f"expected one hook virtualenv with an engine command under {self.home}: {found}"
        return found[0]


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    require(shutil.which("git"), "git is not installed (pre-commit needs it)")
    require(importlib.util.find_spec("pre_commit"), "pre-commit is not installed: pip install -e '.[dev]'")
    base = tmp_path_factory.mktemp("pre-commit")
    source = base / "headrace"
    _copy_checkout(source)
    assert (source / ".pre-commit-hooks.yaml").is_file()
    _git(source, "init", "-q")
    _git(source, "add", "-A")
    _git(source, "commit", "-q", "--no-verify", "-m", "headrace under test")
    rev = _git(source, "rev-parse", "HEAD").strip()

    repo = base / "graphs-repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    hook_list = "".join(f"      - id: {hook}\n" for hook in HOOK_IDS)
    config = f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n{hook_list}"
    (repo / ".pre-commit-config.yaml").write_text(config)
    hooks = Hooks(repo, base / "pre-commit-home", 0.0)
    started = time.monotonic()
    installed = hooks.run("install-hooks")
    hooks.install_seconds = time.monotonic() - started
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield hooks


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_hooks_pass_and_fail_as_the_engine_commands_do(hooks: Hooks) -> None:
    # A repository of graphs with what is not a graph next to them: a test file under
    # graphs/, YAML and TOML outside graphs/ (.pre-commit-config.yaml itself among them).
    hooks.write("graphs/doubling.yaml", VALID)
    hooks.write("graphs/doubling.test.yaml", PASSING_TEST)
    hooks.write("ci/workflow.yml", "on: push\n")
    hooks.write("settings.toml", "[tool]\nname = 'x'\n")
    _git(hooks.repo, "add", "-A")

    # validate: only graphs/doubling.yaml is handed to it, and it is valid.
    result = hooks.run("run", "headrace-validate", "--all-files", "--verbose")
    assert result.returncode == 0, _output(result)
    assert "1 file valid" in result.stdout, _output(result)

    # validate: a broken graph fails, with file:line:col and the problem code.
    hooks.write("graphs/broken.yaml", BROKEN)
    line = next(n for n, text in enumerate(BROKEN.splitlines(), 1) if "from: dubled" in text)
    column = BROKEN.splitlines()[line - 1].index("dubled") + 1
    result = hooks.run("run", "headrace-validate", "--files", "graphs/broken.yaml")
    assert result.returncode == 1, _output(result)
    assert f"graphs/broken.yaml:{line}:{column}: HR032" in result.stdout, _output(result)

    # migrate-check: a version-2 graph passes (the test file is not handed to it) ...
    result = hooks.run("run", "headrace-migrate-check", "--all-files", "--verbose")
    assert result.returncode == 0, _output(result)
    assert "graphs/doubling.yaml: up to date (version 2)" in result.stdout, _output(result)
    assert "doubling.test.yaml" not in result.stdout, _output(result)

    # ... and a version-1 graph fails, left as it was.
    old = (ROOT / "tests" / "graphs" / "v1" / "alerts.yaml").read_text()
    hooks.write("graphs/alerts.yaml", old)
    result = hooks.run("run", "headrace-migrate-check", "--files", "graphs/alerts.yaml", "graphs/doubling.yaml")
    assert result.returncode == 1, _output(result)
    assert "graphs/alerts.yaml: would migrate 1 -> 2" in result.stdout, _output(result)
    assert (hooks.repo / "graphs" / "alerts.yaml").read_text() == old
    (hooks.repo / "graphs" / "broken.yaml").unlink()
    (hooks.repo / "graphs" / "alerts.yaml").unlink()

    # HEADRACE_MYPYC=0 reached pip through pre-commit: no C compile (docs/cli.md says so too).
    version = subprocess.run([str(hooks.engine()), "--version"], capture_output=True, text=True, timeout=120,
                             env=_clean_env())
    assert "(interpreted," in version.stdout, version.stdout + version.stderr

    # test: runs every test file under graphs/ whenever something there changed.
    result = hooks.run("run", "headrace-test", "--files", "graphs/doubling.yaml")
    assert result.returncode == 0, _output(result)
    assert "Passed" in result.stdout, _output(result)
    hooks.write("graphs/more/doubling_wrongly.test.yaml", FAILING_TEST.replace("doubling.yaml", "../doubling.yaml"))
    result = hooks.run("run", "headrace-test", "--files", "graphs/doubling.yaml")
    assert result.returncode == 1, _output(result)
    assert "FAIL graphs/more/doubling_wrongly.test.yaml::doubled wrongly" in result.stdout, _output(result)
    # Nothing under graphs/ changed: the hook does not run.
    result = hooks.run("run", "headrace-test", "--files", "settings.toml")
    assert result.returncode == 0 and "no files to check" in result.stdout, _output(result)
    print(f"pre-commit installed the hooks in {hooks.install_seconds:.1f} s")
