"""OpenCL devices: which exist, and which one a GPU segment runs on (or NumPy).

PyOpenCL is optional (`headrace[gpu]`), so it is imported only inside the functions that need
it: importing this module costs nothing, and without PyOpenCL there are simply no devices.
The choice follows two settings, `opencl_device` (HEADRACE_OPENCL_DEVICE) and
`opencl_fallback` (HEADRACE_OPENCL_FALLBACK), which the command line reads and hands to the
GPU family as a GpuConfig (adapters/gpu/config.py; this module reads no settings). Every
refusal is one line naming the variable and the fix, because it ends up in front of a user,
not a developer.
"""

import fnmatch
import re
import threading
from dataclasses import dataclass
from typing import Any, Final

DEVICE_VARIABLE: Final = "HEADRACE_OPENCL_DEVICE"
FALLBACK_VARIABLE: Final = "HEADRACE_OPENCL_FALLBACK"
INSTALL: Final = "pip install 'headrace[gpu]'"
_GLOB_CHARS: Final = frozenset("*?[")
_INDEX: Final = re.compile(r"[0-9]+")


class DeviceError(Exception):
    """No usable backend for the settings; the message is one line naming the setting and the fix."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int  # position in list_devices()
    platform: str
    name: str
    kind: str  # "gpu" | "cpu" | "accelerator" | "other"
    fp64: bool
    global_mem_bytes: int
    max_alloc_bytes: int
    compute_units: int
    opencl_version: str
    vendor: str  # shown by `engine devices --format json`

    @property
    def label(self) -> str:
        """`platform / name`, how messages and `engine devices` name the device."""
        return f"{self.platform} / {self.name}"


@dataclass(frozen=True)
class Choice:
    backend: str  # "opencl" | "numpy"
    device: DeviceInfo | None  # None for numpy
    reason: str  # one line: why this backend


_lock = threading.Lock()  # segments of several graphs may ask at once
_devices: list[DeviceInfo] | None = None
_cl_devices: list[Any] = []  # the pyopencl.Device behind each DeviceInfo, same order
_queues: dict[int, tuple[Any, Any]] = {}


def opencl_available() -> bool:
    """Whether PyOpenCL can be imported (a broken install, e.g. a missing ICD loader, counts as no)."""
    try:
        import pyopencl  # noqa: F401 (imported to see whether it can be)
    except Exception:  # any failure to import means no OpenCL here
        return False
    return True


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device, platforms in PyOpenCL's order and devices in platform order;
    [] without PyOpenCL or without a platform. Never raises; listed once per process."""
    global _devices
    with _lock:
        if _devices is None:
            _devices, _cl_devices[:] = _scan()
        return list(_devices)


def clear_cache() -> None:
    """Forget the device list and the open queues (for tests)."""
    global _devices
    with _lock:
        _devices = None
        _cl_devices.clear()
        _queues.clear()
        UNUSABLE.clear()


def _scan() -> tuple[list[DeviceInfo], list[Any]]:
    if not opencl_available():
        return [], []
    import pyopencl as cl

    try:
        platforms = cl.get_platforms()
    except Exception:  # PLATFORM_NOT_FOUND_KHR and kin: no OpenCL installed
        return [], []
    infos: list[DeviceInfo] = []
    handles: list[Any] = []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except Exception:  # a platform without devices raises DEVICE_NOT_FOUND
            continue
        for device in devices:
            try:
                info = _describe(cl, len(infos), platform, device)
            except Exception:  # a device that cannot say what it is cannot be used
                continue
            problem = _cannot_build(cl, device)
            if problem:
                UNUSABLE.append(f"{info.label}: {problem}")
                continue
            infos.append(info)
            handles.append(device)
    return infos, handles


# Devices that were found but cannot compile a kernel, with why (shown by `engine devices`).
UNUSABLE: list[str] = []
_PROBE = "__kernel void hr_probe(__global int *x) { x[get_global_id(0)] = 1; }"


def _cannot_build(cl: Any, device: Any) -> str:
    """Why a one-line kernel does not build on `device`; "" when it does. A driver can list
    a device it cannot compile for (a CPU newer than the OpenCL compiler bundled with it,
    say); such a device must never be chosen."""
    try:
        context = cl.Context(devices=[device])
        cl.Program(context, _PROBE).build()
    except Exception as exc:
        return "its OpenCL compiler cannot build a kernel (" + _one_line(exc)[:80] + "...)"
    return ""


def has_fp64(device: Any) -> bool:
    """Whether a pyopencl device runs float64: the extension the generated kernel enables
    (`#pragma OPENCL EXTENSION cl_khr_fp64`), so choosing a device and building for it agree."""
    return "cl_khr_fp64" in device.extensions.split()


def _describe(cl: Any, index: int, platform: Any, device: Any) -> DeviceInfo:
    kinds = cl.device_type
    kind = ("gpu" if device.type & kinds.GPU else "accelerator" if device.type & kinds.ACCELERATOR
            else "cpu" if device.type & kinds.CPU else "other")
    return DeviceInfo(index=index, platform=str(platform.name).strip(), name=str(device.name).strip(), kind=kind,
                      fp64=has_fp64(device), global_mem_bytes=int(device.global_mem_size),
                      max_alloc_bytes=int(device.max_mem_alloc_size), compute_units=int(device.max_compute_units),
                      opencl_version=str(device.version).strip(), vendor=str(device.vendor).strip())


def open_queue(device: DeviceInfo) -> tuple[Any, Any]:
    """(pyopencl.Context, pyopencl.CommandQueue) for `device`, profiling enabled so segments
    can time their kernels; opened once per device and shared."""
    listed = list_devices()
    with _lock:
        if device.index in _queues:
            return _queues[device.index]
        if device.index >= len(listed) or listed[device.index] != device:
            raise DeviceError(f"OpenCL device {device.index} ({device.label}) is not among this machine's devices; "
                              "run `engine devices` to list them")
        import pyopencl as cl

        handle = _cl_devices[device.index]
        try:
            context = cl.Context([handle])
            queue = cl.CommandQueue(context, handle, properties=cl.command_queue_properties.PROFILING_ENABLE)
        except cl.Error as exc:
            raise DeviceError(f"cannot open OpenCL device {device.index} ({device.label}): {_one_line(exc)}; "
                              f"choose another with {DEVICE_VARIABLE}") from exc
        _queues[device.index] = (context, queue)
        return context, queue


def choose(setting: str, fallback: str = "none", need_fp64: bool = False, need_opencl: bool = False,
           devices: list[DeviceInfo] | None = None) -> Choice:
    """The backend for a segment: `setting` is HEADRACE_OPENCL_DEVICE (auto, numpy, cpu, a
    device number, or a name pattern), `fallback` HEADRACE_OPENCL_FALLBACK (none or numpy:
    whether a device that is missing or lacks float64 may give way to NumPy). `need_opencl`:
    the segment holds OpenCL C (`opencl.kernel`), which only an OpenCL device can run."""
    wanted = setting.strip()
    key = wanted.lower() or "auto"
    may_fall_back = _may_fall_back(fallback) and not need_opencl
    if key == "numpy":
        if need_opencl:
            raise DeviceError(f"{DEVICE_VARIABLE}=numpy, but an opencl.kernel node holds OpenCL C source, which "
                              f"NumPy cannot run; set {DEVICE_VARIABLE} to auto, cpu or a device")
        return Choice("numpy", None, f"{DEVICE_VARIABLE}=numpy")
    if devices is None:
        if not opencl_available() and key != "auto":
            return _refuse(f"{DEVICE_VARIABLE}={wanted} needs PyOpenCL, which is not installed", INSTALL,
                           may_fall_back)
        if not opencl_available() and not need_opencl:
            return Choice("numpy", None, f"auto: PyOpenCL is not installed ({INSTALL}); running on NumPy")
        devices = list_devices()  # [] without PyOpenCL: opencl.kernel is refused below
    if key == "auto":
        picked = _auto(devices, need_fp64, need_opencl)
        if isinstance(picked, Choice):
            return picked
        device, reason = picked
    else:
        named = _named(wanted, key, devices, may_fall_back)
        if isinstance(named, Choice):
            return named
        device, reason = named, f"{DEVICE_VARIABLE}={wanted}: {named.label}"
    if need_fp64 and not device.fp64:
        return _no_fp64(device, may_fall_back, need_opencl)
    return Choice("opencl", device, reason)


def _may_fall_back(fallback: str) -> bool:
    value = fallback.strip().lower()
    if value not in ("none", "numpy"):
        raise DeviceError(f"{FALLBACK_VARIABLE}={fallback}: must be none or numpy")
    return value == "numpy"


def _auto(devices: list[DeviceInfo], need_fp64: bool, need_opencl: bool) -> Choice | tuple[DeviceInfo, str]:
    """The first GPU (with float64 if needed and one has it); without a GPU, NumPy, or for
    OpenCL C the first device of any kind. The caller applies the float64 rule."""
    gpus = [d for d in devices if d.kind == "gpu"]
    if gpus:
        with_fp64 = [d for d in gpus if d.fp64] if need_fp64 else []
        if with_fp64:
            return with_fp64[0], f"auto: the first GPU with float64 support, {with_fp64[0].label}"
        return gpus[0], f"auto: the first GPU, {gpus[0].label}"
    if not need_opencl:
        return Choice("numpy", None, f"auto: no GPU found; running on NumPy ({DEVICE_VARIABLE}=cpu picks an "
                                     "OpenCL CPU device)")
    if not devices:
        raise DeviceError("opencl.kernel needs an OpenCL device and none was found; "
                          "install headrace[gpu] (PoCL runs OpenCL on the CPU)")
    device = next((d for d in devices if d.fp64), devices[0]) if need_fp64 else devices[0]
    return device, f"auto: no GPU found; opencl.kernel needs OpenCL, so it runs on {device.label} ({device.kind})"


def _named(wanted: str, key: str, devices: list[DeviceInfo], may_fall_back: bool) -> DeviceInfo | Choice:
    """The device `cpu`, a number or a pattern names; a refusal (or NumPy, if allowed) when none."""
    found = _catalogue(devices)
    if key == "cpu":
        cpus = [d for d in devices if d.kind == "cpu"]
        if cpus:
            return cpus[0]
        return _refuse(f"{DEVICE_VARIABLE}=cpu, but there is no OpenCL CPU device ({found})",
                       f"install PoCL ({INSTALL}) or set {DEVICE_VARIABLE} to auto, numpy or another device",
                       may_fall_back)
    if _INDEX.fullmatch(key):
        number = int(key)
        if number < len(devices):
            return devices[number]
        return _refuse(f"{DEVICE_VARIABLE}={wanted}, but there is no OpenCL device {number} ({found})",
                       "run `engine devices` to list them", may_fall_back)
    glob = any(c in _GLOB_CHARS for c in key)
    for device in devices:
        for text in (device.name, device.platform, device.label):
            text = text.lower()
            if fnmatch.fnmatchcase(text, key) if glob else key in text:
                return device
    return _refuse(f"{DEVICE_VARIABLE}={wanted} matches no OpenCL device ({found})",
                   "set it to auto, numpy, cpu, a device number or part of a device name (`engine devices` "
                   "lists them)", may_fall_back)


def _catalogue(devices: list[DeviceInfo]) -> str:
    """`2 devices: 0: platform / name, 1: ...`, or that there are none."""
    if not devices:
        return "no OpenCL devices found"
    noun = "device" if len(devices) == 1 else "devices"
    return f"{len(devices)} {noun}: " + ", ".join(f"{d.index}: {d.label}" for d in devices)


def _refuse(problem: str, fix: str, may_fall_back: bool) -> Choice:
    """NumPy when HEADRACE_OPENCL_FALLBACK=numpy allows it, else DeviceError(problem; fix)."""
    if may_fall_back:
        return Choice("numpy", None, f"{problem}; running on NumPy as {FALLBACK_VARIABLE}=numpy allows")
    raise DeviceError(f"{problem}; {fix}")


def _no_fp64(device: DeviceInfo, may_fall_back: bool, need_opencl: bool) -> Choice:
    if may_fall_back:
        return Choice("numpy", None, f"{device.label} has no float64 support (cl_khr_fp64); "
                                     f"running on NumPy as {FALLBACK_VARIABLE}=numpy allows")
    fixes = "declare float32 columns or choose another device with " + DEVICE_VARIABLE
    if not need_opencl:  # NumPy cannot run OpenCL C, so the fallback is no fix for opencl.kernel
        fixes = (f"declare float32 columns, choose another device with {DEVICE_VARIABLE}, "
                 f"or set {FALLBACK_VARIABLE}=numpy")
    raise DeviceError(f"{device.name} has no float64 support (cl_khr_fp64), which float64 columns need "
                      f"(Apple GPUs have none): {fixes}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
