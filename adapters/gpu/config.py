"""The GPU settings a segment builder chooses its device by.

The command line reads them from the engine settings (`opencl_device`, `opencl_fallback`)
and builds the GPU family with them (adapters/cli/registry.py); the choice itself is
adapters/gpu/devices.py:choose. A module of its own so that building a registry imports
nothing that lists or opens devices.
"""

from dataclasses import dataclass
from typing import Final

# The defaults of the settings `opencl_device` and `opencl_fallback` (adapters/settings.py).
DEFAULT_DEVICE: Final = "auto"
DEFAULT_FALLBACK: Final = "none"


@dataclass(frozen=True)
class GpuConfig:
    device: str = DEFAULT_DEVICE  # auto, numpy, cpu, a device number or part of a device name
    fallback: str = DEFAULT_FALLBACK  # none or numpy: may a missing or unfit device give way to NumPy
    # Why the settings could not be read, when only GPU segments needed them (`engine run` of a
    # graph without durable edges): building a segment fails with it, naming the segment.
    settings_problem: str = ""
