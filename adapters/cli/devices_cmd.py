"""`engine devices`: the OpenCL devices GPU segments can run on, and which one they pick."""

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.cli.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from adapters.gpu.config import GpuConfig
    from adapters.gpu.devices import Choice, DeviceInfo


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    devices = commands.add_parser("devices", help="list OpenCL devices and the one GPU segments pick")
    devices.add_argument("--config", metavar="FILE",
                         help="settings file (default: $HEADRACE_CONFIG, else ./engine.toml if present)")
    devices.add_argument("--format", choices=("text", "json"), default="text",
                         help="text (default, a table) or json (one object)")


def cmd_devices(args: argparse.Namespace) -> int:
    """Exit 0, or 2 when the settings are invalid or name a device that cannot be had."""
    # Imported here: other commands never pay for this one (PyOpenCL loads inside list_devices).
    from adapters.gpu.devices import (
        DeviceError,
        choose,
        list_devices,
        opencl_available,
    )

    devices = list_devices()
    config: GpuConfig | None = None
    choice: Choice | None = None
    error = ""
    try:
        config = _config(args.config)
        choice = choose(config.device, config.fallback, devices=devices if opencl_available() else None)
    except DeviceError as exc:
        error = str(exc)
    if args.format == "json":
        if choice is None or config is None:
            return _fail(error)
        sys.stdout.write(json.dumps(_as_json(opencl_available(), devices, config, choice), indent=2) + "\n")
        return EXIT_OK
    if not devices:
        head = ("no OpenCL devices: PyOpenCL is not installed (pip install 'headrace[gpu]')" if not opencl_available()
                else "no OpenCL devices found")
        print(f"{head}; segments run on NumPy" if choice is not None and choice.backend == "numpy" else head)
    else:
        sys.stdout.write(render_table(devices))
        from adapters.gpu.devices import UNUSABLE
        for line in UNUSABLE:
            print(f"skipped {line}")
        if choice is not None and config is not None:
            print(_picks(config.device, choice))
    return EXIT_OK if choice is not None else _fail(error)


def _config(path: str | None) -> "GpuConfig":
    """The GPU settings: the file `--config` names, else the default one; the environment
    overrides either."""
    from adapters.cli.registry import gpu_config
    from adapters.gpu.devices import DeviceError
    from adapters.settings import (  # pydantic loads only here
        SettingsError,
        load_settings,
    )

    try:
        settings = load_settings(Path(path) if path else None)
    except SettingsError as exc:
        raise DeviceError(str(exc)) from exc
    return gpu_config(settings)


def _fail(error: str) -> int:
    for line in error.splitlines():
        print(f"engine: error: {line}", file=sys.stderr)
    return EXIT_USAGE


def _picks(setting: str, choice: "Choice") -> str:
    """`auto picks: numpy (why)`; a device the setting names needs no why beyond the setting."""
    auto = setting.strip().lower() == "auto"
    picks = "auto picks" if auto else f"HEADRACE_OPENCL_DEVICE={setting} picks"
    if choice.device is None:
        return f"{picks}: numpy ({choice.reason})"
    if auto:
        return f"{picks}: opencl device {choice.device.index} ({choice.reason})"
    return f"{picks}: opencl device {choice.device.index}, {choice.device.label}"


def _as_json(available: bool, devices: "list[DeviceInfo]", config: "GpuConfig", choice: "Choice") -> dict[str, object]:
    return {
        "pyopencl": available,
        "devices": [dataclasses.asdict(d) for d in devices],
        "setting": {"opencl_device": config.device, "opencl_fallback": config.fallback},
        "choice": {"backend": choice.backend, "device": None if choice.device is None else choice.device.index,
                   "reason": choice.reason},
    }


def render_table(devices: "list[DeviceInfo]") -> str:
    """One aligned row per device under a header; the OpenCL version, often long, comes last."""
    header = ("#", "platform / device", "kind", "fp64", "memory", "max alloc", "units", "OpenCL")
    rows = [header] + [
        (str(d.index), d.label, d.kind, "yes" if d.fp64 else "no", _size(d.global_mem_bytes),
         _size(d.max_alloc_bytes), str(d.compute_units), d.opencl_version)
        for d in devices
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]) for row in rows]
    return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    """Bytes as `15.8 GiB` or `512 MiB`."""
    if count >= 1 << 30:
        return f"{count / (1 << 30):.1f} GiB"
    return f"{count / (1 << 20):.0f} MiB"
