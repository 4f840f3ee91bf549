#!/usr/bin/env bash
# The image's builder stage, and the first step of docker/check-package.sh: builds the
# compiled (mypyc) wheel of the source tree in the current directory into OUT_DIR, and
# checks that it holds what `engine` needs at run time. One script for both, so that what
# CI checks is what the image ships.
#
#   docker/build-wheel.sh OUT_DIR        (PYTHON picks the interpreter; default python3)
set -euo pipefail
out="${1:?usage: docker/build-wheel.sh OUT_DIR}"
python="${PYTHON:-python3}"

# Compiled whatever the caller's environment says: HEADRACE_MYPYC=0 would build the pure
# Python package, which runs but is not what the image promises.
export HEADRACE_MYPYC=1
# --no-deps: only Headrace's own wheel; the runtime stage installs the dependencies from
# the index, as prebuilt wheels. Build isolation fetches setuptools and mypy for the build.
"$python" -m pip wheel --no-input --disable-pip-version-check --no-deps --wheel-dir "$out" .

# Exactly one wheel, compiled, with the control plane's generated stubs beside the code.
"$python" - "$out" <<'PY'
import sys
import zipfile
from pathlib import Path

wheels = sorted(Path(sys.argv[1]).glob("headrace-*.whl"))
if len(wheels) != 1:
    sys.exit(f"build-wheel: expected one headrace wheel in {sys.argv[1]}, found {[w.name for w in wheels]}")
names = zipfile.ZipFile(wheels[0]).namelist()
needed = ["adapters/cli/main.py", "adapters/control/v1/control_pb2.py", "adapters/control/v1/control_pb2_grpc.py",
          "loader/__init__.py", "migrations/__init__.py", "engine/compiled_modules.py"]
missing = [name for name in needed if name not in names]
if not any(name.startswith("engine/") and name.endswith(".so") for name in names):
    missing.append("engine/*.so (the mypyc-compiled modules)")
if missing:
    sys.exit(f"build-wheel: {wheels[0].name} lacks " + ", ".join(missing))
print(f"build-wheel: {wheels[0].name}: {len(names)} files, compiled")
PY
