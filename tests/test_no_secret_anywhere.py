"""No secret value appears in any command's output or in any file the engine writes.

Secrets are planted every way a graph can hold one: an `http.post` Authorization header from
a plain `${VAR}`, a connector DSN password, `${secret:VAR}` in a URL and in a filter, and a
variable the file's `secret_env` lists. Then every command that shows a graph runs against it
(`validate`, `plan`, `graph` in each format, `run --stats-file`, `test`, `serve` with text and
JSON logs, `ctl status`, `top --once`, `/metrics`), including failures whose messages name the
URL (an unreachable `http.post`, a refused PostgreSQL and Redis login), and every byte of
their output and of every file under the working directory is searched for each secret: the
sink's data file too, since no secret flows into these events (the graph and test files
themselves are the user's).
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import ROOT
from tests.ctl_serve_support import Engine
from tests.process_support import free_port, wait_for

SECRETS = {
    "POST_TOKEN": "post-T0ken-4b1d9e",  # an http.post header: secret by its node type
    "PG_PASSWORD": "pg-Passw0rd-83ac21",  # a DSN password: secret by its node type
    "REDIS_PASSWORD": "redis-Passw0rd-77e0",  # a URL password: secret by its node type
    "URL_KEY": "url-K3y-19f0c6",  # ${secret:URL_KEY} in a URL's query
    "BLOCKED_USER": "blocked-Us3r-5e2a",  # ${secret:BLOCKED_USER} inside a filter expression
    "HOOK_KEY": "hook-K3y-a07c44",  # listed in secret_env, used as a plain ${HOOK_KEY}
}


def graphs(closed: int) -> dict[str, str]:
    """Two graphs: `ship` fails fast (its endpoint refuses), `tail` keeps reconnecting."""
    ship = f"""version: 2
name: ship
secret_env: [HOOK_KEY]
nodes:
  orders:
    type: generate
    with: {{count: 20, fields: {{user: "'u' + str(i % 3)", amount: i}}}}
  kept:
    type: filter
    from: orders
    with: {{where: "user != '${{secret:BLOCKED_USER}}'"}}
  saved:
    type: file.write
    from: kept
    with: {{path: out/ship.jsonl}}
  post:
    type: http.post
    from: kept
    with:
      url: "http://127.0.0.1:{closed}/hooks/${{HOOK_KEY}}?key=${{secret:URL_KEY}}"
      headers: {{Authorization: "Bearer ${{POST_TOKEN}}"}}
      retries: 0
      timeout: 2s
"""
    tail = f"""version: 2
name: tail
nodes:
  changes:
    type: redis.read
    with: {{url: "redis://:${{REDIS_PASSWORD}}@127.0.0.1:{closed}/0", stream: orders, group: tail}}
  rows:
    type: postgres.write
    from: changes
    with:
      dsn: "host=127.0.0.1 port={closed} dbname=shop user=etl password=${{PG_PASSWORD}} connect_timeout=2"
      table: orders
"""
    test = """version: 1
graph: ship.yaml
env: {}
tests:
  - name: the blocked user is filtered out
    inputs:
      orders:
        - {user: u1, amount: 1}
    expect:
      saved: {count: 1}
"""
    return {"ship.yaml": ship, "tail.yaml": tail, "ship.test.yaml": test}


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(SECRETS, PYTHONPATH=str(ROOT))
    return env


def engine_cmd(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "adapters.cli.main", *args], cwd=cwd, env=env or environment(),
                          capture_output=True, text=True, timeout=120)
    return f"$ engine {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def files_leaking(root: Path) -> dict[str, list[str]]:
    """Every file under `root` holding a secret (binary files too: LMDB state, logs)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        names = [name for name, value in SECRETS.items() if value.encode() in data]
        if names and path.parent.name != "graphs":  # the graph and test files are the user's own
            found[str(path.relative_to(root))] = names
    return found


def test_no_secret_in_any_output_or_written_file(tmp_path, monkeypatch):
    for name, value in SECRETS.items():  # `engine serve` (tests/ctl_serve_support.py) takes this environment
        monkeypatch.setenv(name, value)
    closed = free_port()  # nothing listens there: every connection is refused at once
    folder = tmp_path / "work"
    (folder / "graphs").mkdir(parents=True)
    (folder / "out").mkdir()
    for name, text in graphs(closed).items():
        (folder / "graphs" / name).write_text(text)
    test_file = folder / "graphs" / "ship.test.yaml"
    test_file.write_text(test_file.read_text().replace("env: {}", "env: " + json.dumps(SECRETS)))

    outputs = [engine_cmd("validate", "graphs/ship.yaml", "graphs/tail.yaml", cwd=folder)]
    for graph in ("graphs/ship.yaml", "graphs/tail.yaml"):
        outputs.append(engine_cmd("plan", graph, cwd=folder))
        for form in ("mermaid", "dot", "json"):
            outputs.append(engine_cmd("graph", graph, "--format", form, cwd=folder))
    run = engine_cmd("run", "graphs/ship.yaml", "--stats-file", "out/stats.json", cwd=folder)
    assert "/hooks/****" in run, run  # the failure names the endpoint, its secret path masked
    outputs.append(run)
    outputs.append(engine_cmd("test", "graphs", cwd=folder))
    outputs.append(engine_cmd("test", "graphs", "--format", "junit", cwd=folder))
    outputs.append(engine_cmd("test", "graphs", "--format", "json", cwd=folder))

    for log_format in ("text", "json"):
        outputs.extend(_served(folder, log_format))
    shown = "\n".join(outputs)
    assert "****" in shown  # the secrets were shown, masked
    assert leaks(shown) == [], shown
    assert files_leaking(tmp_path) == {}



def _served(folder: Path, log_format: str) -> list[str]:
    """`engine serve graphs` with `log_format` logs and /metrics: what `engine ctl status`,
    `engine top --once --json` and a scrape show once `ship` has ended, and the server's log."""
    metrics = f"127.0.0.1:{free_port()}"
    served = Engine(folder, {"LOG_FORMAT": log_format, "METRICS_ADDRESS": metrics, "LOG_LEVEL": "debug"})
    outputs: list[str] = []
    try:
        served.wait_serving()
        wait_for(lambda: _ship_done(served.ctl("status", "ship").stdout), timeout=60,
                 seen=lambda: served.ctl("status", "ship").stdout)
        for args in (("status", "--json"), ("status", "ship", "--json"), ("status", "tail", "--json"),
                     ("status", "ship"), ("status", "tail")):
            done = served.ctl(*args)
            outputs.append(f"$ engine ctl {' '.join(args)}\n{done.stdout}\n{done.stderr}")
        outputs.append(engine_cmd("top", "--once", "--json", "--interval", "0.2", cwd=folder, env=served.env))
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
            outputs.append(response.read().decode())
    finally:
        served.stop()
    log = served.log.read_text()
    assert "/hooks/****" in log, log
    outputs.append(log)
    return outputs


def _ship_done(status: str) -> bool:
    return any(word in status for word in ("finished", "failed"))
