#!/usr/bin/env bash
# The image's runtime stage, and the second step of docker/check-package.sh: installs the
# one Headrace wheel in DIST_DIR (not editable: what a user gets), with its dependencies
# from the index and the given extras, then checks that the installed `engine` runs
# compiled. One script for both, so that what CI checks is what the image ships.
#
#   docker/install-wheel.sh DIST_DIR [EXTRAS]   (EXTRAS e.g. "gpu"; PYTHON picks the
#                                                interpreter, default python3)
set -euo pipefail
dist="${1:?usage: docker/install-wheel.sh DIST_DIR [EXTRAS]}"
extras="${2:-}"
# A full path: the console script is looked for next to it.
python="$(command -v "${PYTHON:-python3}")"

shopt -s nullglob
wheels=("$dist"/headrace-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "install-wheel: expected one headrace wheel in $dist, found ${#wheels[@]}" >&2
    exit 1
fi
# The wheel's own path, never the name `headrace`: the index must not be able to supply a
# different package of that name.
requirement="${wheels[0]}"
if [ -n "$extras" ]; then
    requirement="${requirement}[${extras}]"
fi
"$python" -m pip install --no-input --disable-pip-version-check "$requirement"

# The console script next to the interpreter (/usr/local/bin in the image, a venv's bin/
# in CI), run from / so that no source tree on the way can be imported instead.
engine="$(dirname "$python")/engine"
version="$(cd / && "$engine" --version)"
echo "install-wheel: $version"
case "$version" in
    *"(compiled,"*) ;;
    *) echo "install-wheel: the installed engine does not run compiled: $version" >&2; exit 1 ;;
esac
