"""The node types this build of Headrace offers, and the families they come in.

The command line is the one place that reads the settings; commands that run graphs build
their registry from them (`registry_for`), so the GPU family gets the device the settings
name. Validating, planning and generating run nothing and need no settings.
"""

from typing import TYPE_CHECKING, Final

from adapters.gpu.config import GpuConfig
from adapters.gpu.family import gpu_family
from adapters.io.catalog import IO_SPECS
from engine.builtin_specs import BUILTIN_FAMILIES, BUILTIN_SPECS
from engine.spec import SpecRegistry

if TYPE_CHECKING:
    from adapters.settings import Settings  # pydantic loads only for commands that read settings

SETTINGS_DEFAULTS: Final = GpuConfig()  # what the settings give when nothing is set


def default_registry(gpu: GpuConfig = SETTINGS_DEFAULTS) -> SpecRegistry:
    return SpecRegistry(BUILTIN_SPECS + IO_SPECS, [*BUILTIN_FAMILIES, gpu_family(gpu)])


def gpu_config(settings: "Settings") -> GpuConfig:
    return GpuConfig(device=settings.opencl_device, fallback=settings.opencl_fallback)


def registry_for(settings: "Settings") -> SpecRegistry:
    """The registry of a command that runs graphs, configured by the settings it loaded."""
    return default_registry(gpu_config(settings))


def registry_without_settings(problem: str) -> SpecRegistry:
    """The registry of a run whose settings could not be read (`problem`) where only node
    families needed them: each of their segments then fails to build with `problem`, naming
    its nodes (`GPU segment 'a' -> 'b': HEADRACE_...`), as any other device problem does."""
    return default_registry(GpuConfig(settings_problem=problem))
