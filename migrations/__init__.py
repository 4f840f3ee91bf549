"""Graph-format migrations: one module per step (`v1_to_v2.py`, then `v2_to_v3.py` ...).

`upgrade(document, to)` chains the steps from the document's version up to `to`; each step
is a pure function over the parsed document that changes it in place and reports every
change, so earlier steps never change when a later one is added.
"""

from collections.abc import Callable, MutableMapping
from typing import Any, Final

from migrations import v1_to_v2
from migrations.change import Change, Decision

Step = Callable[[MutableMapping[str, Any]], tuple[list[Change], list[Decision]]]

# from-version -> the step to the next version
STEPS: Final[dict[int, Step]] = {v1_to_v2.FROM_VERSION: v1_to_v2.migrate}
CURRENT_VERSION: Final = 2  # the format files are upgraded to, and the words plans use
SUPPORTED_VERSIONS: Final = tuple(sorted(set(STEPS) | {CURRENT_VERSION}))  # every version this engine reads


def upgrade(document: MutableMapping[str, Any], to: int = CURRENT_VERSION) -> tuple[list[Change], list[Decision]]:
    changes: list[Change] = []
    decisions: list[Decision] = []
    version = document.get("version")
    while isinstance(version, int) and not isinstance(version, bool) and version < to and version in STEPS:
        step_changes, step_decisions = STEPS[version](document)
        changes += step_changes
        decisions += step_decisions
        version = document.get("version")
    return changes, decisions
