"""CI cannot skip: under CI=true a test that would skip for want of a tool or a device fails
the run with the reason (tests/conftest.py), and .ci/run stops when it cannot install the
OpenCL driver those tests need."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

SKIPPING = textwrap.dedent('''
    import pytest

    def test_needs_a_tool():
        pytest.skip("frobnicate is not installed")

    @pytest.mark.skipif(True, reason="no frobnicator device")
    def test_needs_a_device():
        pass

    def test_linted_elsewhere():
        pytest.skip("linted in the interpreted run; the source is the same")

    def test_runs():
        pass
''')


def pytest_run(*args: str, ci: bool, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m pytest ARGS` from the repository root, in an environment of its own."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "CI"}
    if ci:
        base["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env={**base, **env}, capture_output=True, text=True, timeout=300)


def test_a_skip_fails_a_ci_run_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_module_skip.py").write_text('import pytest\npytest.importorskip("no_such_module_here")\n')
    here = pytest_run("-p", "tests.conftest", "-rs", str(tmp_path), ci=False)
    assert here.returncode == 0, here.stdout + here.stderr
    assert "1 passed, 4 skipped" in here.stdout
    ci = pytest_run("-p", "tests.conftest", "--continue-on-collection-errors", str(tmp_path), ci=True)
    assert ci.returncode == 1, ci.stdout + ci.stderr
    out = ci.stdout
    assert "FAILED" in out and "test_needs_a_tool - CI=true, and CI may not skip: frobnicate is not installed" in out
    assert "test_needs_a_device - CI=true, and CI may not skip: no frobnicator device" in out
    assert "test_module_skip.py - CI=true, and CI may not skip: could not import 'no_such_module_here'" in out
    assert "1 failed, 1 passed, 1 skipped, 2 errors" in out  # the listed skip (CI_SKIPS_ALLOWED) stays a skip


def test_without_an_opencl_device_the_opencl_tests_fail_in_ci(tmp_path: Path) -> None:
    """The real thing: OpenCL hidden from the ICD loader, as on a CI machine where PoCL is missing."""
    hidden = {"OCL_ICD_VENDORS": str(tmp_path)}  # an empty folder of drivers: no platform at all
    tests = ["tests/test_gpu_segments.py::test_cpu_setting_runs_on_the_opencl_cpu_device",
             "tests/test_opencl_backend.py"]
    here = pytest_run("-n", "0", "-rs", *tests, ci=False, **hidden)
    assert here.returncode == 0, here.stdout + here.stderr
    assert "2 skipped" in here.stdout and "no OpenCL device that builds kernels" in here.stdout
    ci = pytest_run("-n", "0", "--continue-on-collection-errors", *tests, ci=True, **hidden)
    assert ci.returncode == 1, ci.stdout + ci.stderr
    reason = "CI=true, and CI may not skip: no OpenCL device that builds kernels"
    assert f"test_cpu_setting_runs_on_the_opencl_cpu_device - {reason}" in ci.stdout
    assert f"ERROR tests/test_opencl_backend.py - {reason}" in ci.stdout


# -- .ci/run and .ci/install-pocl --------------------------------------------------------------

def fake_bin(tmp_path: Path, apt_get: str) -> dict[str, str]:
    """PATH with a stand-in apt-get (and sudo, for a run that is not root)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"apt-get $*\" >> {tmp_path}/apt.log\n{apt_get}\n")
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", POCL_ICD_FILE=str(tmp_path / "pocl.icd"))


def install_pocl(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / ".ci/install-pocl")], env=env, capture_output=True, text=True,
                          timeout=60)


def test_install_pocl_fails_when_apt_get_fails(tmp_path: Path) -> None:
    done = install_pocl(fake_bin(tmp_path, 'case "$1" in install) exit 100;; esac'))
    assert done.returncode == 1
    assert done.stderr.startswith("error: could not install Debian's pocl-opencl-icd: apt-get install "
                                  "pocl-opencl-icd failed. The OpenCL tests need an OpenCL device")
    assert (tmp_path / "apt.log").read_text().splitlines() == ["apt-get update -qq",
                                                               "apt-get install -y -qq pocl-opencl-icd"]


def test_install_pocl_fails_when_the_install_leaves_no_driver(tmp_path: Path) -> None:
    done = install_pocl(fake_bin(tmp_path, "exit 0"))
    assert done.returncode == 1 and f"{tmp_path}/pocl.icd is missing after the install" in done.stderr


def test_install_pocl_installs_only_when_missing(tmp_path: Path) -> None:
    env = fake_bin(tmp_path, f'case "$1" in install) touch {tmp_path}/pocl.icd;; esac')
    assert install_pocl(env).returncode == 0
    assert install_pocl(env).returncode == 0
    assert len((tmp_path / "apt.log").read_text().splitlines()) == 2  # update and install, once


def test_ci_run_sets_ci_and_stops_when_pocl_cannot_be_installed() -> None:
    lines = (ROOT / ".ci/run").read_text().splitlines()
    assert "set -euo pipefail" in lines
    first_test = next(i for i, line in enumerate(lines) if "pytest" in line and not line.startswith("#"))
    assert lines.index("export CI=true") < first_test
    assert lines.index("bash .ci/install-pocl") < first_test  # a plain command: under set -e its failure stops CI
