"""`engine run`'s choice of where partitioned stages run: the command line first, then
the settings (read here, by the command line, and only for a graph with stages)."""

from pathlib import Path

from adapters.ray.executor import RAY, options_from, ray_stages
from engine.plan import GraphPlan
from engine.runtime import StageFactory


def stage_executor(plan: GraphPlan, executor: str | None, address: str | None,
                   config: str | None) -> StageFactory | None:
    """The stage factory for `plan`: None runs stages in this process. `executor` and
    `address` come from the command line (None: the settings say). Raises ClusterError
    (Ray missing or unreachable) and ValueError (the settings) with one line."""
    if not plan.stages:
        return None  # nothing to place: a graph without parallelism runs as it always did
    settings = None
    if executor is None or executor == RAY:
        from adapters.settings import SettingsError, load_settings
        try:
            settings = load_settings(Path(config) if config else None)
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        executor = executor or settings.executor
    if executor != RAY or settings is None:
        return None
    return ray_stages(options_from(settings, address))
