"""OpenCL devices: listing, choosing a backend from HEADRACE_OPENCL_DEVICE / _FALLBACK, `engine devices`."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from adapters.gpu import devices as dev
from adapters.gpu.devices import Choice, DeviceError, DeviceInfo, choose
from tests.conftest import ROOT, require
from tests.gpu_support import NO_OPENCL


def info(index, kind, name, platform="Vendor", fp64=True):
    return DeviceInfo(index=index, platform=platform, name=name, kind=kind, fp64=fp64, global_mem_bytes=8 << 30,
                      max_alloc_bytes=2 << 30, compute_units=16, opencl_version="OpenCL 3.0", vendor=platform)


POCL_CPU = info(0, "cpu", "pthread-Some CPU", "Portable Computing Language")
GPU = info(1, "gpu", "GeForce RTX 4090", "NVIDIA CUDA")
APPLE = info(2, "gpu", "Apple M2", "Apple", fp64=False)
MACHINE = [POCL_CPU, GPU]


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No cached devices or queues, and no GPU settings from the environment."""
    for name in ("HEADRACE_OPENCL_DEVICE", "HEADRACE_OPENCL_FALLBACK", "HEADRACE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    dev.clear_cache()
    yield
    dev.clear_cache()


def refusal(*args, **kwargs) -> str:
    with pytest.raises(DeviceError) as caught:
        choose(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- this machine's devices (PoCL) ------------------------------------------------------------

def pyopencl():
    require(importlib.util.find_spec("pyopencl"), NO_OPENCL)
    return importlib.import_module("pyopencl")


def pocl_device() -> DeviceInfo:
    pyopencl()
    found = [d for d in dev.list_devices() if d.platform == "Portable Computing Language"]
    require(found, "no PoCL device that builds kernels here: install Debian's pocl-opencl-icd, as CI does")
    return found[0]


def test_list_devices_finds_the_pocl_cpu_device():
    device = pocl_device()
    assert device.kind == "cpu" and device.fp64
    assert device.compute_units >= 1 and device.global_mem_bytes > 0 and device.max_alloc_bytes > 0
    assert device.opencl_version.startswith("OpenCL ") and device.name == device.name.strip()
    listed = dev.list_devices()
    assert [d.index for d in listed] == list(range(len(listed)))
    assert dev.list_devices() == listed and dev.opencl_available()


def test_open_queue_opens_once_with_profiling():
    cl = pyopencl()
    device = pocl_device()
    context, queue = dev.open_queue(device)
    assert dev.open_queue(device) == (context, queue)
    assert dev.open_queue(device)[1] is queue
    assert queue.properties & cl.command_queue_properties.PROFILING_ENABLE
    assert [d.name.strip() for d in context.devices] == [device.name]


def test_open_queue_refuses_a_device_that_is_not_here():
    pyopencl()
    stranger = info(len(dev.list_devices()) + 5, "gpu", "Imaginary GPU")
    with pytest.raises(DeviceError, match="not among this machine's devices; run `engine devices`"):
        dev.open_queue(stranger)


def test_choose_on_this_machine():
    device = pocl_device()
    assert choose("auto", need_opencl=True).device == dev.list_devices()[0]
    assert choose("cpu") == Choice("opencl", device, "HEADRACE_OPENCL_DEVICE=cpu: " + device.label)


def test_without_pyopencl_there_are_no_devices(monkeypatch):
    monkeypatch.setattr(dev, "opencl_available", lambda: False)
    assert dev.list_devices() == []


def test_without_a_platform_there_are_no_devices(monkeypatch):
    cl = pyopencl()

    def no_platform():
        raise cl.Error("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(cl, "get_platforms", no_platform)
    assert dev.list_devices() == []


# -- choose() on made-up machines -------------------------------------------------------------

def test_auto_prefers_a_gpu():
    first_gpu = Choice("opencl", GPU, "auto: the first GPU, NVIDIA CUDA / GeForce RTX 4090")
    assert choose("auto", devices=MACHINE) == first_gpu
    assert choose(" AUTO ", devices=[POCL_CPU, APPLE, GPU]).device == APPLE


def test_auto_prefers_a_gpu_with_float64_when_needed():
    assert choose("auto", need_fp64=True, devices=[POCL_CPU, APPLE, GPU]).device == GPU


def test_auto_without_a_gpu_runs_on_numpy():
    assert choose("auto", devices=[POCL_CPU]) == Choice(
        "numpy", None, "auto: no GPU found; running on NumPy (HEADRACE_OPENCL_DEVICE=cpu picks an OpenCL CPU device)")
    assert choose("auto", devices=[]).backend == "numpy"


def test_auto_for_opencl_c_takes_any_opencl_device():
    choice = choose("auto", need_opencl=True, devices=[POCL_CPU])
    assert choice.backend == "opencl" and choice.device == POCL_CPU
    assert "no GPU found; opencl.kernel needs OpenCL" in choice.reason
    assert refusal("auto", need_opencl=True, devices=[]) == (
        "opencl.kernel needs an OpenCL device and none was found; install headrace[gpu] (PoCL runs OpenCL on the CPU)")


def test_numpy():
    assert choose("numpy", devices=MACHINE) == Choice("numpy", None, "HEADRACE_OPENCL_DEVICE=numpy")
    message = refusal("NumPy", need_opencl=True, devices=MACHINE)
    assert message.startswith("HEADRACE_OPENCL_DEVICE=numpy, but an opencl.kernel node holds OpenCL C source")
    assert message.endswith("set HEADRACE_OPENCL_DEVICE to auto, cpu or a device")


def test_cpu():
    assert choose("cpu", devices=MACHINE).device == POCL_CPU
    message = refusal("cpu", devices=[GPU])
    assert message.startswith("HEADRACE_OPENCL_DEVICE=cpu, but there is no OpenCL CPU device (1 device: "
                              "1: NVIDIA CUDA / GeForce RTX 4090)")
    fallen = choose("cpu", "numpy", devices=[GPU])
    assert fallen.backend == "numpy"
    assert fallen.reason.endswith("running on NumPy as HEADRACE_OPENCL_FALLBACK=numpy allows")
    refusal("cpu", "numpy", need_opencl=True, devices=[GPU])  # NumPy cannot stand in for OpenCL C


def test_index():
    assert choose("1", devices=MACHINE).device == GPU
    assert choose(" 0 ", devices=MACHINE).device == POCL_CPU
    assert refusal("2", devices=MACHINE) == (
        "HEADRACE_OPENCL_DEVICE=2, but there is no OpenCL device 2 (2 devices: 0: Portable Computing Language / "
        "pthread-Some CPU, 1: NVIDIA CUDA / GeForce RTX 4090); run `engine devices` to list them")
    assert "(no OpenCL devices found)" in refusal("0", devices=[])
    assert choose("7", "numpy", devices=MACHINE).backend == "numpy"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("rtx", GPU), ("GEFORCE", GPU), ("nvidia", GPU), ("portable", POCL_CPU), ("pthread", POCL_CPU),
    ("nvidia cuda / geforce", GPU), ("*4090", GPU), ("geforce rtx ????", GPU), ("[pq]thread-*", POCL_CPU),
    ("Portable*/*cpu", POCL_CPU), ("*", POCL_CPU),
])
def test_pattern(pattern, expected):
    assert choose(pattern, devices=MACHINE) == Choice(
        "opencl", expected, f"HEADRACE_OPENCL_DEVICE={pattern}: {expected.label}")


def test_pattern_without_a_match_lists_the_devices():
    assert refusal("radeon", devices=MACHINE) == (
        "HEADRACE_OPENCL_DEVICE=radeon matches no OpenCL device (2 devices: 0: Portable Computing Language / "
        "pthread-Some CPU, 1: NVIDIA CUDA / GeForce RTX 4090); set it to auto, numpy, cpu, a device number or "
        "part of a device name (`engine devices` lists them)")
    assert "matches no OpenCL device" in refusal("4090*", devices=MACHINE)  # a glob matches whole names
    assert choose("radeon", "numpy", devices=MACHINE).backend == "numpy"


def test_a_device_without_float64():
    message = refusal("apple", need_fp64=True, devices=[APPLE])
    assert message == (
        "Apple M2 has no float64 support (cl_khr_fp64), which float64 columns need (Apple GPUs have none): declare "
        "float32 columns, choose another device with HEADRACE_OPENCL_DEVICE, or set HEADRACE_OPENCL_FALLBACK=numpy")
    assert refusal("auto", need_fp64=True, devices=[POCL_CPU, APPLE]).startswith("Apple M2 has no float64 support")
    assert "HEADRACE_OPENCL_FALLBACK" not in refusal("apple", "numpy", need_fp64=True, need_opencl=True,
                                                     devices=[APPLE])
    assert choose("auto", "numpy", need_fp64=True, devices=[APPLE]) == Choice(
        "numpy", None, "Apple / Apple M2 has no float64 support (cl_khr_fp64); running on NumPy as "
        "HEADRACE_OPENCL_FALLBACK=numpy allows")
    assert choose("apple", devices=[APPLE]).device == APPLE  # float32 only: fine


def test_a_wrong_fallback_is_refused():
    assert refusal("auto", "cpu", devices=MACHINE) == "HEADRACE_OPENCL_FALLBACK=cpu: must be none or numpy"


def test_without_pyopencl(monkeypatch):
    monkeypatch.setattr(dev, "opencl_available", lambda: False)
    monkeypatch.setattr(dev, "list_devices", list)
    assert choose("auto") == Choice("numpy", None, "auto: PyOpenCL is not installed (pip install 'headrace[gpu]'); "
                                                   "running on NumPy")
    assert refusal("cpu") == ("HEADRACE_OPENCL_DEVICE=cpu needs PyOpenCL, which is not installed; "
                              "pip install 'headrace[gpu]'")
    assert refusal("GeForce").startswith("HEADRACE_OPENCL_DEVICE=GeForce needs PyOpenCL")
    assert choose("0", "numpy").backend == "numpy"
    assert refusal("auto", need_opencl=True).startswith("opencl.kernel needs an OpenCL device and none was found")


# -- engine devices ---------------------------------------------------------------------------

def engine(*args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_OPENCL_")}
    result = subprocess.run([sys.executable, "-m", "adapters.cli.main", "devices", *args], cwd=ROOT,
                            env={**environment, **env}, capture_output=True, text=True, timeout=120, check=False)
    return result.returncode, result.stdout, result.stderr


def test_engine_devices_lists_the_pocl_device():
    device = pocl_device()
    code, out, err = engine()
    assert (code, err) == (0, "")
    header, *rows, picks = out.splitlines()
    assert header.split()[:4] == ["#", "platform", "/", "device"]
    row = rows[device.index]
    assert row.startswith(f"{device.index}  {device.label}") and " cpu " in row and " yes " in row
    assert row.endswith(device.opencl_version) and " GiB" in row
    assert picks.startswith("auto picks: ")


def test_engine_devices_json():
    device = pocl_device()
    code, out, err = engine("--format", "json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["pyopencl"] is True
    # PoCL sizes its memory from what the machine has free, which other processes change.
    sizes = {"global_mem_bytes": 0, "max_alloc_bytes": 0}
    assert dataclasses.replace(DeviceInfo(**shown["devices"][device.index]), **sizes) == \
        dataclasses.replace(device, **sizes)
    assert shown["setting"] == {"opencl_device": "auto", "opencl_fallback": "none"}
    assert set(shown["choice"]) == {"backend", "device", "reason"}


def test_engine_devices_with_a_device_setting():
    device = pocl_device()
    code, out, _ = engine(HEADRACE_OPENCL_DEVICE="PTHREAD")
    assert code == 0
    assert out.splitlines()[-1] == f"HEADRACE_OPENCL_DEVICE=PTHREAD picks: opencl device {device.index}, {device.label}"
    code, out, _ = engine("--format", "json", HEADRACE_OPENCL_DEVICE=str(device.index))
    assert json.loads(out)["choice"]["device"] == device.index


def test_engine_devices_with_a_setting_that_matches_nothing_exits_2():
    device = pocl_device()
    code, out, err = engine(HEADRACE_OPENCL_DEVICE="nomatch")
    assert code == 2
    assert device.label in out and "picks" not in out  # the list, to choose from
    assert err.startswith("engine: error: HEADRACE_OPENCL_DEVICE=nomatch matches no OpenCL device (")
    assert engine("--format", "json", HEADRACE_OPENCL_DEVICE="nomatch")[:2] == (2, "")


def test_engine_devices_with_invalid_settings_exits_2():
    code, out, err = engine(HEADRACE_OPENCL_FALLBACK="cpu")
    assert (code, err) == (2, "engine: error: HEADRACE_OPENCL_FALLBACK: must be none or numpy (got 'cpu')\n")
    assert "picks" not in out
    assert engine("--format", "json", HEADRACE_OPENCL_FALLBACK="cpu")[:2] == (2, "")


def test_engine_devices_without_pyopencl(cli, monkeypatch):
    monkeypatch.setattr(dev, "opencl_available", lambda: False)
    assert cli("devices") == (
        0, "no OpenCL devices: PyOpenCL is not installed (pip install 'headrace[gpu]'); segments run on NumPy\n", "")
    assert json.loads(cli("devices", "--format", "json")[1])["choice"]["backend"] == "numpy"
    monkeypatch.setenv("HEADRACE_OPENCL_DEVICE", "cpu")
    assert cli("devices") == (
        2, "no OpenCL devices: PyOpenCL is not installed (pip install 'headrace[gpu]')\n",
        "engine: error: HEADRACE_OPENCL_DEVICE=cpu needs PyOpenCL, which is not installed; "
        "pip install 'headrace[gpu]'\n")


def test_engine_devices_without_a_platform(cli, monkeypatch):
    monkeypatch.setattr(dev, "list_devices", list)
    assert cli("devices") == (0, "no OpenCL devices found; segments run on NumPy\n", "")


def test_engine_devices_config_file(cli, monkeypatch, tmp_path):
    (tmp_path / "gpu.toml").write_text("opencl_device = 0\nopencl_fallback = \"numpy\"\n")
    monkeypatch.setattr(dev, "list_devices", lambda: [POCL_CPU])
    code, out, err = cli("devices", "--config", str(tmp_path / "gpu.toml"), "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["setting"] == {"opencl_device": "0", "opencl_fallback": "numpy"}


def test_other_commands_and_graphs_without_gpu_nodes_do_not_load_pyopencl():
    script = ("import sys\nfrom adapters.cli.main import run\nassert run(['validate', 'graphs/']) == 0\n"
              "assert run(['run', 'graphs/quickstart.yaml']) == 0\n"
              "print(sorted(m for m in ('pyopencl', 'numpy', 'adapters.gpu.devices') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")
