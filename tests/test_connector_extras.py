"""Connector client libraries are extras: without one, graphs using its nodes still
validate and plan, and running one stops at start with one line naming the extra."""

import sys
import textwrap

import pytest

from adapters.cli.registry import default_registry
from loader.api import load_text

CASES = [  # (client module, extra, a reader node of it)
    ("psycopg", "postgres", 'type: postgres.read, with: {dsn: "postgresql://h/db", '
                            'query: "SELECT 1 WHERE %(cursor)s > 0", cursor: {field: id, start: 0}}'),
    ("redis", "redis", 'type: redis.read, with: {url: "redis://127.0.0.1:1/0", stream: s}'),
    ("nats", "nats", 'type: nats.read, with: {servers: "nats://127.0.0.1:1", stream: S, durable: d}'),
    ("aiomqtt", "mqtt", 'type: mqtt.read, with: {url: "mqtt://127.0.0.1:1", topic: t}'),
]


def graph(node: str) -> str:
    return f"""
        version: 2
        nodes:
          src: {{{node}}}
          out: {{type: "null", from: {{node: src, edge: {{durable: true}}}}}}
        """


@pytest.fixture
def without(monkeypatch):
    """Makes `import NAME` (and its submodules) fail as if the library were not installed."""
    def hide(name: str) -> None:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)
    return hide


@pytest.mark.parametrize(("module", "extra", "node"), CASES, ids=[c[1] for c in CASES])
def test_a_missing_client_library_names_the_extra_and_validating_needs_none(cli, without, tmp_path, monkeypatch,
                                                                             module, extra, node):
    without(module)
    text = textwrap.dedent(graph(node))
    loaded = load_text("g.yaml", text, default_registry())
    assert [p.message for p in loaded.problems] == [] and loaded.plan is not None
    (tmp_path / "g.yaml").write_text(text)
    monkeypatch.setenv("HEADRACE_STATE_DIR", str(tmp_path / "state"))
    code, out, err = cli("run", str(tmp_path / "g.yaml"))
    assert (code, out) == (1, "")
    assert err == (f"engine: error: node 'src': its client library {module} is not installed; install it with "
                   f"`pip install 'headrace[{extra}]'`\n")
