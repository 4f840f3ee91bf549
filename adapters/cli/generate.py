"""Regenerate the committed generated files: `python -m adapters.cli.generate`.

A test compares each file with `generated_files()` and fails when one is stale.
"""

import json
from pathlib import Path

from adapters.cli.registry import default_registry
from loader.reference import nodes_markdown, problems_markdown
from loader.schema_gen import SUPPORTED_VERSIONS, graph_schema


def generated_files() -> dict[str, str]:
    """Repository-relative path -> expected content."""
    registry = default_registry()
    files = {f"schema/graph.v{v}.json": json.dumps(graph_schema(registry, v), indent=2) + "\n"
             for v in SUPPORTED_VERSIONS}
    files["docs/nodes.md"] = nodes_markdown(registry)
    files["docs/problems.md"] = problems_markdown()
    return files


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    for relative, content in generated_files().items():
        (root / relative).write_text(content, encoding="utf-8")
        print(f"wrote {relative}")


if __name__ == "__main__":
    main()
