"""The engine modules that mypyc compiles: one list for the build and for `engine --version`.

`setup.py` reads this file (without importing the package) and compiles exactly these
modules; `engine.buildinfo` checks that each of them was loaded from a native extension.
Keep it plain data: no imports beyond typing.

Left out, each for a reason:

- `engine/__init__.py`: only a docstring; nothing to speed up, and an interpreted package
  `__init__` keeps the package importable the same way in both modes.
- `engine/buildinfo.py`: inspects the build (once per `engine --version`); it has no hot code
  and must give the same answer whichever way the rest was built.
- `engine/compiled_modules.py` (this file): build-time data, read by `setup.py` as source.
"""

from typing import Final

COMPILED: Final[tuple[str, ...]] = (
    "engine.agent_functions",
    "engine.aggregate",
    "engine.builtin_specs",
    "engine.chain",
    "engine.collection_functions",
    "engine.compile_expr",
    "engine.comprehensions",
    "engine.controls",
    "engine.dedupe",
    "engine.durability",
    "engine.durations",
    "engine.edges",
    "engine.encoding_functions",
    "engine.errors",
    "engine.explode",
    "engine.expr",
    "engine.expr_builtins",
    "engine.expr_rewrite",
    "engine.expr_types",
    "engine.field_paths",
    "engine.findings",
    "engine.functions",
    "engine.fused",
    "engine.fused_aggregate",
    "engine.fused_code",
    "engine.fusion",
    "engine.hash_functions",
    "engine.ids",
    "engine.io_drivers",
    "engine.join",
    "engine.join_spec",
    "engine.keys",
    "engine.library_checks",
    "engine.library_functions",
    "engine.literal_checks",
    "engine.lookup",
    "engine.math_functions",
    "engine.node",
    "engine.node_swap",
    "engine.params",
    "engine.partition",
    "engine.partition_build",
    "engine.partition_router",
    "engine.plan",
    "engine.plan_chains",
    "engine.plan_diff",
    "engine.policies",
    "engine.runner",
    "engine.runtime",
    "engine.sample",
    "engine.secrets",
    "engine.spec",
    "engine.stable_hash",
    "engine.stage_instance",
    "engine.throttle",
    "engine.text_functions",
    "engine.text_patterns",
    "engine.time_functions",
    "engine.transforms",
    "engine.type_functions",
    "engine.wakeup",
    "engine.windows",
)
