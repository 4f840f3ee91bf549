"""The node types this build of Headrace offers."""

from adapters.io_specs import IO_SPECS
from engine.builtin_specs import BUILTIN_SPECS
from engine.spec import SpecRegistry


def default_registry() -> SpecRegistry:
    return SpecRegistry(BUILTIN_SPECS + IO_SPECS)
