"""Regenerate the committed generated files: `python -m adapters.cli.generate`.

A test compares each file with `generated_files()` and fails when one is stale.
"""

import json
from pathlib import Path

from adapters.cli.registry import default_registry
from adapters.pictures.docs_page import with_pictures
from engine.spec import SpecRegistry
from loader.api import load_directory
from loader.reference import Usages, nodes_markdown, problems_markdown, with_policy_table
from loader.schema_gen import graph_schema
from loader.test_schema import TEST_FORMAT_VERSION, graph_test_schema
from migrations import SUPPORTED_VERSIONS

ROOT = Path(__file__).resolve().parents[2]


def example_usages(registry: SpecRegistry) -> Usages:
    """Where each node type appears in graphs/, so the reference links real examples."""
    usages: Usages = {}
    for result in load_directory(ROOT / "graphs", registry, env={}):
        if result.plan is None:
            continue
        relative = "../" + Path(result.file).resolve().relative_to(ROOT).as_posix()
        for node in result.plan.nodes:
            usages.setdefault(node.type, []).append((relative, node.name))
    return usages


def generated_files() -> dict[str, str]:
    """Repository-relative path -> expected content."""
    registry = default_registry()
    files = {f"schema/graph.v{v}.json": json.dumps(graph_schema(registry, v), indent=2) + "\n"
             for v in SUPPORTED_VERSIONS}
    files[f"schema/tests.v{TEST_FORMAT_VERSION}.json"] = json.dumps(graph_test_schema(), indent=2) + "\n"
    files["docs/nodes.md"] = nodes_markdown(registry, example_usages(registry))
    files["docs/problems.md"] = problems_markdown()
    files["docs/edges.md"] = with_policy_table((ROOT / "docs/edges.md").read_text(encoding="utf-8"))
    files["docs/graphs.md"] = with_pictures((ROOT / "docs/graphs.md").read_text(encoding="utf-8"), ROOT / "graphs",
                                            registry)
    return files


def main() -> None:
    for relative, content in generated_files().items():
        (ROOT / relative).write_text(content, encoding="utf-8")
        print(f"wrote {relative}")


if __name__ == "__main__":
    main()
