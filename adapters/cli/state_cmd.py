"""`engine state ls` and `engine state prune DIR`: the durable edges kept in the state directory
(`engine state rotate-key`: adapters/cli/state_rotate_cmd.py).

A removed graph's durable edges stay on disk (their events may still matter); `prune`
deletes the ones no graph file in DIR declares any more, listing them first, and only with
`--yes`.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from adapters.cli.exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from adapters.cli.state_rotate_cmd import add_rotate_parser, cmd_rotate_key


def add_parser(commands: Any) -> None:
    state = commands.add_parser("state", help="list, prune or re-encrypt the durable edges in the state directory")
    verbs = state.add_subparsers(dest="state_command", required=True, metavar="VERB")
    ls = verbs.add_parser("ls", help="durable edges with their depth and size")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    prune = verbs.add_parser("prune", help="delete durable edges no graph in DIR declares (lists them first)")
    prune.add_argument("directory", metavar="DIR")
    prune.add_argument("--yes", action="store_true", help="delete them (without it: only list them)")
    add_rotate_parser(verbs)


def _edges_dir() -> Path:
    from adapters.settings import load_settings  # pydantic loads only for this command

    return load_settings().state_dir / "edges"


def _list(store: Any) -> list[dict[str, object]]:
    from adapters.storage.lmdb_table import edge_of

    env = store.env
    found: list[dict[str, object]] = []
    with env.begin() as txn:
        names = [bytes(k) for k, _ in txn.cursor()]
    for name in names:
        which = edge_of(name)
        if which is None:
            continue  # the store's own databases
        db = store.database(name)
        with env.begin() as txn:
            stat = txn.stat(db)
        graph, edge = which
        pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        found.append({"graph": graph, "edge": edge, "events": stat["entries"], "bytes": pages * stat["psize"]})
    return found


def list_edges(store: Any) -> list[dict[str, object]]:
    """Each durable edge in `store` with its graph, edge, events and bytes, as `engine state ls`
    lists them (also for `engine diagnostics collect`)."""
    return _list(store)


def _declared(directory: Path) -> set[tuple[str, str]] | None:
    from adapters.cli.registry import default_registry
    from loader.api import load_directory

    results = load_directory(directory, default_registry())
    if any(not r.ok for r in results):
        return None
    return {(r.plan.name, e.id) for r in results if r.plan is not None for e in r.plan.edges
            if e.durable}


def cmd_state(args: argparse.Namespace) -> int:
    from adapters.settings import SettingsError

    if args.state_command == "rotate-key":
        return cmd_rotate_key(args)
    try:
        edges_dir = _edges_dir()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"engine: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    if not (edges_dir / "data.mdb").exists():
        print(f"no durable edges: {edges_dir} holds no state", file=sys.stderr)
        return EXIT_OK
    from adapters.storage.lmdb_store import DurableStorageError, LmdbStore
    try:
        store = LmdbStore(edges_dir, verify=False)  # counts and sizes only: no key needed
        found = _list(store)
    except DurableStorageError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.state_command == "ls":
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            print(f"{'graph':20} {'edge':32} {'events':>10} {'bytes':>12}")
            for e in found:
                print(f"{e['graph']:20} {e['edge']:32} {e['events']:>10} {e['bytes']:>12}")
        return EXIT_OK
    declared = _declared(Path(args.directory))
    if declared is None:
        print(f"engine: error: {args.directory} has invalid graph files; fix them first (`engine validate "
              f"{args.directory}`), so that no edge is pruned by mistake", file=sys.stderr)
        return EXIT_PROBLEMS
    stale = [e for e in found if (e["graph"], e["edge"]) not in declared]
    if not stale:
        print("nothing to prune: every durable edge belongs to a graph in " + args.directory)
        return EXIT_OK
    for e in stale:
        print(f"{'deleting' if args.yes else 'would delete'} {e['graph']}/{e['edge']} ({e['events']} events)")
    if not args.yes:
        print("run again with --yes to delete them")
        return EXIT_OK
    _prune(store, [(str(e["graph"]), str(e["edge"])) for e in stale])
    return EXIT_OK


def _prune(store: Any, edges: list[tuple[str, str]]) -> None:
    from adapters.storage.lmdb_table import CHECKPOINTS, checkpoint_prefix, database_name

    env, points = store.env, store.database(CHECKPOINTS)
    for graph, edge in edges:
        name = database_name(graph, edge)
        db = store.database(name)
        prefix = checkpoint_prefix(graph, edge)
        with env.begin(write=True) as txn:
            txn.drop(db, delete=True)
            cursor = txn.cursor(points)
            if cursor.set_range(prefix):
                while cursor.key().startswith(prefix):
                    if not cursor.delete():
                        break
        store.shared.databases.pop(name, None)
