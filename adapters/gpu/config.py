"""The GPU settings a segment builder chooses its device by.

The command line reads them from the engine settings (`opencl_device`, `opencl_fallback`)
and builds the GPU family with them (adapters/cli/registry.py); the choice itself is
adapters/gpu/devices.py:choose. A module of its own so that building a registry imports
nothing that lists or opens devices.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuConfig:
    device: str = "auto"  # auto, numpy, cpu, a device number or part of a device name
    fallback: str = "none"  # none or numpy: may a missing or unfit device give way to NumPy
