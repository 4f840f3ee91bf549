"""`engine diagnostics collect`: a support bundle from a running `engine serve` (through its
control plane, with a token) and from this machine, in which no planted secret appears —
searched in every byte of the decompressed archive — and whose manifest lists every member
with its SHA-256. Without a reachable server the bundle is still written and says so."""

import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.serve.logs import RecentLines
from tests.conftest import ROOT
from tests.ctl_serve_support import Engine
from tests.process_support import free_port, wait_for

TOKEN = "control-token-7d1f0c93"
API_TOKEN = "api-token-from-env-5b2e"
HEADER_SECRET = "static-header-secret-91aa"
URL_PASSWORD = "url-password-3c7e"
DSN_PASSWORD = "dsn-password-e84d"
SECRETS = (TOKEN, API_TOKEN, HEADER_SECRET, URL_PASSWORD, DSN_PASSWORD)

GRAPH = textwrap.dedent(f"""\
    version: 2
    name: secretive
    nodes:
      ticks:
        type: generate
        with: {{rate: 20, fields: {{n: i}}}}
      out:
        type: http.post
        from: {{node: ticks, edge: {{durable: true, capacity: 64}}}}
        with:
          url: "http://127.0.0.1:1/in"
          retries: 0
          timeout: 1s
          headers:
            Authorization: "Bearer ${{API_TOKEN}}"
            X-Static-Key: "{HEADER_SECRET}"
      mirror:
        type: http.post
        from: ticks
        with: {{url: "http://collector:{URL_PASSWORD}@127.0.0.1:1/in", retries: 0, timeout: 1s}}
      ticks_db:
        type: postgres.write
        from: ticks
        with:
          dsn: "postgresql://app:{DSN_PASSWORD}@127.0.0.1:1/shop"
          table: ticks
    """)


def _collect(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapters.cli.main", "diagnostics", "collect", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()}


def _check_manifest(members: dict[str, bytes]) -> dict[str, object]:
    manifest = json.loads(members["manifest.json"])
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(members) - {"manifest.json"}
    for path, data in members.items():
        if path != "manifest.json":
            assert listed[path]["bytes"] == len(data), path
            assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
    return manifest  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    folder = tmp_path_factory.mktemp("served")
    (folder / "graphs").mkdir()
    (folder / "graphs" / "secretive.yaml").write_text(GRAPH)
    with pytest.MonkeyPatch.context() as patch:  # the graph's ${API_TOKEN}, in the engine's environment
        patch.setenv("API_TOKEN", API_TOKEN)
        engine = Engine(folder, {"CONTROL_TOKEN": TOKEN, "AUDIT_LOG": str(folder / "audit.jsonl")})
    yield engine, folder
    engine.stop()


def _serve_env(engine: Engine) -> dict[str, str]:
    """The engine's own environment: its token and, to show it is not collected, API_TOKEN."""
    return {**engine.env, "API_TOKEN": API_TOKEN}


def test_a_bundle_from_a_served_engine_holds_everything_and_no_secret(served: tuple[Engine, Path]) -> None:
    engine, folder = served
    engine.wait_serving(f"--token={TOKEN}")
    wait_for(lambda: "secretive" in engine.ctl("status", f"--token={TOKEN}").stdout, timeout=60)
    wait_for(lambda: (folder / "state" / "edges" / "data.mdb").exists(), timeout=60)

    done = _collect(folder, "-o", "bundle.tar.gz", env=_serve_env(engine))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote bundle.tar.gz (")
    assert done.stderr == ""
    bundle = folder / "bundle.tar.gz"
    assert bundle.stat().st_mode & 0o777 == 0o600

    everything = gzip.decompress(bundle.read_bytes())  # the tar stream: every member and header
    for secret in SECRETS:
        assert secret.encode() not in everything, secret
    members = _members(bundle)
    for name, data in members.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, name)
    _check_manifest(members)

    assert {"version.json", "devices.json", "settings.json", "environment.json", "state.json", "summary.txt",
            "control/status.json", "control/graphs/secretive.yaml.json", "control/plans/secretive.yaml.json",
            "control/logs.txt", "control/events.jsonl"} <= set(members)
    assert "control/error.txt" not in members
    version = json.loads(members["version.json"])
    assert version["build"] in ("compiled", "interpreted")
    assert version["python"]["version"] and version["cpu"]["machine"]
    assert json.loads(members["settings.json"])["settings"]["control_token"] == "****"
    assert json.loads(members["environment.json"])["HEADRACE_CONTROL_TOKEN"] == "****"
    assert "API_TOKEN" not in json.loads(members["environment.json"])

    plan = json.loads(members["control/plans/secretive.yaml.json"])
    out = plan["plan"]["nodes"]["out"]["with"]
    assert out["headers"] == {"Authorization": "****", "X-Static-Key": "****"}
    assert plan["plan"]["nodes"]["mirror"]["with"]["url"] == "http://collector:****@127.0.0.1:1/in"
    assert plan["plan"]["nodes"]["ticks_db"]["with"]["dsn"] == "postgresql://app:****@127.0.0.1:1/shop"
    status = json.loads(members["control/status.json"])
    assert status["health"] == "SERVING"
    assert [g["name"] for g in status["graphs"]] == ["secretive"]
    graph = json.loads(members["control/graphs/secretive.yaml.json"])
    assert {e["id"] for e in graph["edges"]} == {"ticks->out", "ticks->mirror", "ticks->ticks_db"}
    assert all("depth" in e for e in graph["edges"])
    logs = members["control/logs.txt"].decode()
    assert "reload secretive.yaml: added" in logs
    assert "control plane on" in logs
    events = [json.loads(line) for line in members["control/events.jsonl"].splitlines()]
    assert any(e["kind"] == "reload" and e["graph"] == "secretive" for e in events)
    state = json.loads(members["state.json"])
    assert {(e["graph"], e["edge"]) for e in state["edges"]} == {("secretive", "ticks->out")}

    audit = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    assert {"GetLogs", "GetPlan"} <= {r["method"] for r in audit}
    assert all(r["principal"] == "token" for r in audit if r["method"] in ("GetLogs", "GetPlan"))


def test_a_wrong_token_still_writes_the_bundle_and_says_why(served: tuple[Engine, Path]) -> None:
    engine, folder = served
    engine.wait_serving(f"--token={TOKEN}")
    env = {**_serve_env(engine), "HEADRACE_CONTROL_TOKEN": "not-the-token"}
    done = _collect(folder, "-o", "refused.tar.gz", env=env)
    assert done.returncode == 0
    assert "nothing from the control plane" in done.stderr and "check --token" in done.stderr
    members = _members(folder / "refused.tar.gz")
    _check_manifest(members)
    assert "nothing was collected from the control plane" in members["control/error.txt"].decode()
    assert "not-the-token" not in gzip.decompress((folder / "refused.tar.gz").read_bytes()).decode("latin-1")


def test_without_a_server_the_bundle_is_written_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(PYTHONPATH=str(ROOT), HEADRACE_CONTROL_TOKEN=TOKEN)
    address = f"127.0.0.1:{free_port()}"
    done = _collect(tmp_path, "--address", address, "-o", str(tmp_path), env=env)
    assert done.returncode == 0
    assert f"cannot reach the control plane at {address}" in done.stderr
    written = list(tmp_path.glob("headrace-diagnostics-*.tar.gz"))
    assert len(written) == 1 and done.stdout.startswith(f"wrote {written[0]} (")
    members = _members(written[0])
    manifest = _check_manifest(members)
    assert str(manifest["folder"]) == written[0].name.removesuffix(".tar.gz")
    assert "NOTHING COLLECTED from a running engine" in members["summary.txt"].decode()
    assert f"cannot reach the control plane at {address}" in members["control/error.txt"].decode()
    assert not any(name.startswith("control/") and name != "control/error.txt" for name in members)
    assert TOKEN.encode() not in gzip.decompress(written[0].read_bytes())


def test_an_output_in_a_missing_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = _collect(tmp_path, "--address", "127.0.0.1:1", "-o", "nowhere/b.tar.gz", env=env)
    assert done.returncode == 2
    assert done.stderr == ("engine: error: cannot write nowhere/b.tar.gz: no directory nowhere; create it or give "
                           "another -o FILE\n")


def test_the_engine_keeps_its_newest_log_lines_masked_and_bounded() -> None:
    recent = RecentLines(capacity=3)
    logger = logging.getLogger("headrace.test_diagnostics")
    logger.addHandler(recent)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        for n in range(5):
            logger.info(f"line {n} to postgresql://app:{DSN_PASSWORD}@db/shop")
    finally:
        logger.removeHandler(recent)
    lines, discarded = recent.newest()
    assert [line.text for line in lines] == [f"engine: info: line {n} to postgresql://app:****@db/shop"
                                             for n in (2, 3, 4)]
    assert discarded == 2
    newest, gone = recent.newest(limit=1)
    assert [line.text for line in newest] == ["engine: info: line 4 to postgresql://app:****@db/shop"]
    assert gone == 4


def test_get_logs_masks_every_running_graphs_secrets_and_the_token_in_lines_and_events(tmp_path: Path) -> None:
    """The net under GetLogs: a line or event that slipped past the node's own mask still
    leaves the engine with `****` for each secret of a running plan, and for the token."""
    from types import SimpleNamespace

    from adapters.cli.registry import default_registry
    from adapters.control.diagnostics import LogView
    from loader.api import load_text

    registry = default_registry()
    loaded = load_text("secretive.yaml", GRAPH, registry, {"API_TOKEN": API_TOKEN})
    assert loaded.plan is not None
    running = SimpleNamespace(name="secretive", file="secretive.yaml", plan=loaded.plan, plan_hash="sha256:x")
    host = SimpleNamespace(graphs={"secretive.yaml": running}, registry=registry, listeners=[])
    recent = RecentLines(capacity=10)
    view = LogView(host, recent, TOKEN)  # type: ignore[arg-type]
    record = logging.LogRecord("headrace", logging.WARNING, "", 0, f"sent {API_TOKEN} {HEADER_SECRET} {TOKEN}",
                               None, None)
    recent.handle(record)
    host.listeners[0]("error", "secretive.yaml", "secretive", f"failed with {DSN_PASSWORD}",
                      {"failure": f"a \"quoted\" {URL_PASSWORD}"})
    answer = view.logs(0)
    assert [line.text for line in answer.lines] == ["engine: warning: sent **** **** ****"]
    assert answer.capacity == 10 and answer.discarded == 0
    (event,) = answer.events
    assert event.detail == "failed with ****"
    assert json.loads(event.json) == {"failure": 'a "quoted" ****'}
    plan = json.loads(view.plan(running).json)  # type: ignore[arg-type]
    assert plan["nodes"]["out"]["with"]["headers"] == {"Authorization": "****", "X-Static-Key": "****"}
    assert not any(secret in view.plan(running).json for secret in SECRETS)  # type: ignore[arg-type]
