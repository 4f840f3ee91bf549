"""The separate virtual environment the peer runtimes are installed into, pinned.

Peers live outside the repo's `.venv` so that their dependencies (bytewax's Rust wheel,
meridian's mkdocs pins, ...) can never change what Headrace's own tests run against.
Installing needs the package index once; after that a check of installed versions is all
that runs, so benchmarks work offline.
"""

import json
import subprocess
import sys
from pathlib import Path

# Runtime key -> pinned requirement. The distribution name is the part before `==`.
PINS: dict[str, str] = {
    "bytewax": "bytewax==0.21.1",
    "reactivex": "reactivex==6.1.0",
    "streamz": "streamz==0.6.6",
    "meridian": "meridian-runtime==1.2.0",
}

_VERSIONS = """
import importlib.metadata as m, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def _installed(python: Path, distributions: list[str]) -> dict[str, str | None]:
    done = subprocess.run([str(python), "-c", _VERSIONS, *distributions], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return dict.fromkeys(distributions)
    found: dict[str, str | None] = json.loads(done.stdout)
    return found


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("WARNING")]
    return lines[-1] if lines else "no output"


def ensure(venv: Path, keys: list[str]) -> dict[str, str]:
    """Make sure the pinned peers for `keys` are installed in `venv` (creating it with this
    interpreter, so peers run on the same CPython as the plain loop). Returns, for each peer
    that is not usable, the reason it is skipped."""
    if not keys:
        return {}
    python = python_of(venv)
    if not python.exists():
        print(f"creating {venv} (peer runtimes, pinned)", file=sys.stderr)
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            reason = f"cannot create {venv}: {_last_line(made.stderr)}"
            return dict.fromkeys(keys, reason)
    wanted = {key: PINS[key] for key in keys}
    versions = _installed(python, [pin.split("==")[0] for pin in wanted.values()])
    skipped: dict[str, str] = {}
    for key, pin in wanted.items():
        name, version = pin.split("==")
        if versions.get(name) == version:
            continue
        print(f"installing {pin} into {venv}", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", pin]
        try:
            done = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=900)
        except subprocess.TimeoutExpired:
            skipped[key] = f"pip install {pin} timed out after 900 s"
            continue
        if done.returncode != 0:
            skipped[key] = f"pip install {pin} failed: {_last_line(done.stderr + done.stdout)}"
        elif _installed(python, [name]).get(name) != version:
            skipped[key] = f"pip install {pin} did not install {name} {version}"
    return skipped
