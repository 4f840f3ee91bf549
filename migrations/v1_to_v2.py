"""Graph format 1 -> 2. A pure function over the parsed document: it changes the mapping in
place (plain dicts, ruamel.yaml's round-trip maps, tomlkit tables alike) and returns every
change it made, and every decision it cannot make for the user.

The changes (docs/migrations.md has the reasons):

1. An input's edge options move into an `edge:` block: `from: {node: a, capacity: 8}` ->
   `from: {node: a, edge: {capacity: 8}}`, so what names the upstream and what shapes the
   edge are no longer mixed in one mapping (`defaults.edge` already had that shape).
2. `storage: lmdb` -> `durable: true`, `storage: memory` -> `durable: false`: say what the
   edge promises, not which library keeps it.
3. `policy: latest` -> `policy: keep_latest`: the name says what it does.
4. `version: 1` -> `version: 2`.

A v1 `latest` edge with a `capacity` other than 1 is a decision for the user: `latest` always
kept one event whatever the capacity said, which is rarely what was meant. v2 refuses the
combination; the step reports it instead of guessing.
"""

from collections.abc import MutableMapping, MutableSequence
from typing import Any, Final

from migrations.change import Change, Decision, Path

FROM_VERSION: Final = 1
TO_VERSION: Final = 2
# `partition_by` joined version 1 too (docs/migrations.md#additions-within-a-version): it moves the same way.
EDGE_KEYS: Final = ("capacity", "policy", "key", "merge", "storage", "partition_by")
# Version 1's words -> version 2's. The only place that knows both (the v1 schema reads them here).
POLICY_RENAMES: Final = {"latest": "keep_latest"}
STORAGE_TO_DURABLE: Final = {"memory": False, "lmdb": True}


def _edge_block(options: MutableMapping[str, Any], path: Path, changes: list[Change],
                decisions: list[Decision], written_at: Path | None = None) -> None:
    """Rename inside one set of edge options (already at its v2 place; `written_at` is where
    the user wrote them, for decisions)."""
    storage = options.get("storage")
    if isinstance(storage, str) and storage in STORAGE_TO_DURABLE:
        # `storage: memory` becomes an explicit `durable: false`, not nothing: it may override
        # `defaults.edge` making edges durable.
        durable = STORAGE_TO_DURABLE[storage]
        _replace_key(options, "storage", "durable", durable)
        changes.append(Change(path + ("storage",), path + ("durable",),
                              f"storage: {storage} -> durable: {'true' if durable else 'false'}",
                              "say what the edge promises, not which library keeps it"))
    policy = options.get("policy")
    if isinstance(policy, str) and policy in POLICY_RENAMES:
        options["policy"] = POLICY_RENAMES[policy]
        changes.append(Change(path + ("policy",), path + ("policy",), f"policy: {policy} -> {options['policy']}",
                              "the name says what the policy does"))
        capacity = options.get("capacity")
        if capacity is not None and capacity != 1:
            decisions.append(Decision(
                (written_at if written_at is not None else path) + ("capacity",),
                f"capacity {capacity} never had an effect with `latest` (it kept one event); decide: "
                f"remove `capacity` to keep only the newest event, or use `policy: drop_oldest` to keep "
                f"the newest {capacity}",
                keep_behaviour_by_removing=path + ("capacity",)))


def _replace_key(mapping: MutableMapping[str, Any], old: str, new: str, value: Any) -> None:
    """Replace `old` by `new` at the same position (round-trip maps keep their order)."""
    position = list(mapping.keys()).index(old)
    del mapping[old]
    _insert(mapping, position, new, value)


def _insert(mapping: MutableMapping[str, Any], position: int, key: str, value: Any) -> None:
    """Add `key` at `position` where the mapping can (ruamel.yaml's maps), else at the end."""
    insert = getattr(mapping, "insert", None)
    if callable(insert):
        insert(position, key, value)
    else:
        mapping[key] = value


def _input(entry: Any, path: Path, changes: list[Change], decisions: list[Decision]) -> None:
    if not isinstance(entry, MutableMapping):
        return
    moving = [k for k in entry if k in EDGE_KEYS]  # in the order written
    if not moving:
        return
    position = list(entry.keys()).index(moving[0])
    block = _new_mapping(entry)
    for key in moving:
        block[key] = entry[key]
        del entry[key]
        changes.append(Change(path + (key,), path + ("edge", key), f"{key} moved into edge:",
                              "edge options are grouped in one block, as in defaults.edge"))
    # Renamed before the block is attached: a tomlkit table copies what it is given.
    _edge_block(block, path + ("edge",), changes, decisions, written_at=path)
    if block:  # empty when only `storage: memory` was there
        _insert(entry, position, "edge", block)


def _new_mapping(like: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """An empty mapping of the same kind, so a YAML or TOML document stays one."""
    try:
        made: MutableMapping[str, Any] = type(like)()
        return made
    except TypeError:
        return {}


def migrate(document: MutableMapping[str, Any]) -> tuple[list[Change], list[Decision]]:
    changes: list[Change] = []
    decisions: list[Decision] = []
    defaults = document.get("defaults")
    if isinstance(defaults, MutableMapping) and isinstance(defaults.get("edge"), MutableMapping):
        _edge_block(defaults["edge"], ("defaults", "edge"), changes, decisions)
    nodes = document.get("nodes")
    if isinstance(nodes, MutableMapping):
        for name, node in nodes.items():
            if not isinstance(node, MutableMapping):
                continue
            source = node.get("from")
            path: Path = ("nodes", str(name), "from")
            if isinstance(source, MutableSequence):
                for index, entry in enumerate(source):
                    _input(entry, path + (index,), changes, decisions)
            else:
                _input(source, path, changes, decisions)
    document["version"] = TO_VERSION
    changes.append(Change(("version",), ("version",), "version: 1 -> 2", "the file is now format 2"))
    return changes, decisions
