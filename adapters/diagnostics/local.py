"""What `engine diagnostics collect` learns on the machine it runs on: the engine's version and
build mode, Python, the OS and CPU, the OpenCL devices, the effective settings (secrets
masked), the names of the HEADRACE_* variables, and the sizes of the durable edges in the
state directory. Each part that cannot be had says why instead; none stops the collection.
"""

import dataclasses
import os
import platform
import re
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Final

from engine.buildinfo import compiled_modules, mode
from engine.secrets import MASK

if TYPE_CHECKING:
    from adapters.settings import Settings

# A HEADRACE_* variable whose value is shown as `****`: a secret setting's, or any whose name
# says it holds one. Paths to key files (HEADRACE_CONTROL_TLS_KEY) are not secrets.
SECRET_NAME: Final = re.compile(r"TOKEN|PASSWORD|PASSPHRASE|SECRET|CREDENTIAL", re.IGNORECASE)


def version() -> dict[str, object]:
    try:
        release = metadata.version("headrace")
    except metadata.PackageNotFoundError:
        release = "0+source"
    return {
        "headrace": release,
        "build": mode(),
        "compiled_modules": compiled_modules(),
        "python": {"implementation": platform.python_implementation(), "version": platform.python_version(),
                   "build": " ".join(platform.python_build()), "compiler": platform.python_compiler()},
        "os": {"system": platform.system(), "release": platform.release(), "version": platform.version(),
               "platform": platform.platform()},
        "cpu": {"machine": platform.machine(), "processor": platform.processor(), "count": os.cpu_count(),
                "byteorder": sys.byteorder},
    }


def devices(settings: "Settings | None") -> dict[str, object]:
    """The OpenCL devices and the one GPU segments would pick (as `engine devices --format json`)."""
    from adapters.gpu.devices import DeviceError, choose, list_devices, opencl_available

    found = list_devices()
    out: dict[str, object] = {"pyopencl": opencl_available(), "devices": [dataclasses.asdict(d) for d in found]}
    if settings is None:
        out["choice"] = None
        return out
    try:
        choice = choose(settings.opencl_device, settings.opencl_fallback,
                        devices=found if opencl_available() else None)
    except DeviceError as exc:
        out["choice"] = {"error": str(exc)}
    else:
        out["choice"] = {"backend": choice.backend, "device": None if choice.device is None else choice.device.index,
                         "reason": choice.reason}
    return out


def environment(secret_settings: frozenset[str]) -> dict[str, str]:
    """HEADRACE_* variables, by name; the value of a secret one is `****`. No other variable
    is collected: graphs' `${VAR}` values are the production environment's own."""
    shown: dict[str, str] = {}
    for name in sorted(os.environ):
        if not name.startswith("HEADRACE_"):
            continue
        field = name.removeprefix("HEADRACE_").lower()
        secret = field in secret_settings or SECRET_NAME.search(name) is not None
        shown[name] = MASK if secret else os.environ[name]
    return shown


def state_sizes(loaded: "Settings | None") -> dict[str, object]:
    """Events and bytes of each durable edge in the state directory (`engine state ls`)."""
    if loaded is None:
        return {"error": "the settings could not be loaded, so the state directory is not known"}
    edges_dir = loaded.state_dir / "edges"
    out: dict[str, object] = {"state_dir": str(loaded.state_dir)}
    if not (edges_dir / "data.mdb").exists():
        out["edges"] = []
        out["note"] = f"{edges_dir} holds no durable state on this machine"
        return out
    from adapters.cli.state_cmd import list_edges
    from adapters.storage.lmdb_store import DurableStorageError, LmdbStore

    try:
        store = LmdbStore(edges_dir)
        try:
            out["edges"] = list_edges(store)
        finally:
            store.close()
    except (DurableStorageError, OSError) as exc:
        out["error"] = str(exc)
    return out
