"""The web inspector of `engine serve` (docs/inspector.md): the page in a real headless
browser (Debian's chromium through /usr/bin/chromedriver), its JSON against `engine ctl
status`, the token rule of `/metrics`, start-up errors, no parameter value and no payload
anywhere, and readings taken during reloads."""

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from adapters.control.service import ControlService
from adapters.control.v1 import control_pb2 as pb
from adapters.observe.inspector import Inspector, InspectorEndpoint, InspectorError, serve_inspector
from adapters.observe.inspector_svg import render
from adapters.observe.inspector_view import fill_level
from adapters.pictures.topology import topology
from loader.api import load_text
from tests import runtime_support
from tests.conftest import ROOT, require
from tests.process_support import engine, free_port, wait_for
from tests.serve_support import Serving, ticking_graph, write_atomically

T = TypeVar("T")

CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "docs" / "inspector.png"
SECRET = "s3cr3t-9f2c"  # in parameter values and payloads below: it must never reach the inspector
VAULT = f"""version: 2
name: vault
nodes:
  src: {{type: generate, with: {{count: 5, fields: {{n: i, key: "'tok-{SECRET}'"}}}}}}
  priced: {{type: map, from: src, with: {{set: {{tag: "'{SECRET}-tag'"}}}}}}
  out: {{type: test.record, from: priced}}
"""
SHOP = """version: 2
name: shop
nodes:
  src: {type: generate, with: {count: 500, fields: {n: i, amount: "'x' if i % 50 == 0 else i"}}}
  priced: {type: map, from: src, on_error: dead_letter, with: {set: {cents: "int(amount) * 100"}}}
  big: {type: filter, from: priced, with: {where: "cents > 1000"}}
  out: {type: test.record, from: big}
  dead: {type: test.record, from: priced.errors}
"""
REJECTED = f"""version: 2
name: bad
nodes:
  src: {{type: generate, with: {{rate: "{SECRET}-rate", fields: {{n: i}}}}}}
  out: {{type: test.record, from: src}}
"""

BACKLOG = """version: 2
name: backlog
nodes:
  ticks: {{type: generate, with: {{rate: 200, fields: {{n: i}}}}}}
  out: {{type: file.write, from: {{node: ticks, edge: {{capacity: 50}}}}, with: {{path: "{out}", format: jsonl}}}}
"""


def broken_sink(blocker: Path) -> str:
    """A graph that fails at start: its sink's path runs through a file."""
    return (f"version: 2\nname: broken_sink\nnodes:\n  src: {{type: generate, with: {{count: 3, fields: {{n: i}}}}}}\n"
            f"  out: {{type: file.write, from: src, with: {{path: \"{blocker}/{SECRET}-dir/out.jsonl\", "
            "format: jsonl}}\n")


# -- helpers -----------------------------------------------------------------------------------

def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """`get` off the loop: the inspector takes its reading on this loop, so a request made on
    it would wait for itself."""
    return await asyncio.to_thread(get, url, headers)


async def api(base: str, token: str = "") -> dict[str, Any]:
    status, _, body = await fetch(base + "/api/graphs" + (f"?token={token}" if token else ""))
    assert status == 200, body
    found: dict[str, Any] = json.loads(body)
    return found


def by_name(reading: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in reading["graphs"]}


@contextlib.asynccontextmanager
async def inspected(directory: Path, token: str | None = None, public: bool = False,
                    **kwargs: Any) -> AsyncIterator[tuple[Serving, str]]:
    """`engine serve`'s order: the inspector is bound and started before the first load."""
    serving = Serving(directory, **kwargs)
    endpoint = serve_inspector("127.0.0.1:0", serving.host, token, public)
    await endpoint.start()
    try:
        async with serving as s:
            yield s, f"http://127.0.0.1:{endpoint.port}"
    finally:
        await endpoint.stop()


# -- the parts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("depth", "level"), [(0, "green"), (599, "green"), (600, "yellow"), (849, "yellow"),
                                              (850, "red"), (1000, "red")])
def test_edge_fill_is_coloured_as_nifi_colours_queues(depth, level):
    assert fill_level(depth, 1000) == level
    assert fill_level(0, 0) == "green"


def test_the_picture_draws_every_node_and_edge_and_no_parameter_value():
    registry = runtime_support.test_registry()
    loaded = load_text("shop.yaml", SHOP, registry)
    assert loaded.plan is not None
    svg = render(topology(loaded.plan, registry))
    root = ET.fromstring(svg)  # well-formed, so the page can parse it
    ns = "{http://www.w3.org/2000/svg}"
    nodes = {g.get("data-node"): g for g in root.iter(f"{ns}g") if g.get("data-node")}
    edges = {g.get("data-edge") for g in root.iter(f"{ns}g") if g.get("data-edge")}
    assert set(nodes) == {n.name for n in loaded.plan.nodes}
    assert edges == {e.id for e in loaded.plan.edges}
    x = {name: float(g.find(f"{ns}rect").get("x")) for name, g in nodes.items()}  # type: ignore[union-attr]
    assert x["src"] < x["priced"] < x["big"] < x["out"] and x["priced"] < x["dead"]  # sources left, sinks right
    vault = load_text("vault.yaml", VAULT, registry).plan
    assert vault is not None
    assert SECRET not in render(topology(vault, registry))


def test_bad_addresses_are_one_line_errors():
    inspector = Inspector(lambda: None, runtime_support.test_registry())  # type: ignore[arg-type,return-value]
    with pytest.raises(InspectorError, match=r"^refusing to serve the inspector on 0\.0\.0\.0:0 without a token"):
        InspectorEndpoint("0.0.0.0:0", inspector)
    with pytest.raises(InspectorError, match=r"^inspector address 'nonsense' is not HOST:PORT"):
        InspectorEndpoint("nonsense", inspector)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InspectorError, match=rf"^cannot serve the inspector on 127\.0\.0\.1:{port}: address "):
            InspectorEndpoint(f"127.0.0.1:{port}", inspector)
    public = InspectorEndpoint("0.0.0.0:0", inspector, public=True)  # anyone may look: allowed
    public.close()


def test_the_page_and_its_api_need_the_token_unless_public(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "a", name="alpha"))

    async def scenario() -> None:
        async with inspected(graphs, token="tok3n") as (_, base):
            for path in ("/", "/api/graphs", "/api/picture?file=a.yaml"):
                assert (await fetch(base + path))[0] == 401
                assert (await fetch(base + path, {"Authorization": "Bearer wrong"}))[0] == 401
                assert (await fetch(base + path + ("&" if "?" in path else "?") + "token=wrong"))[0] == 401
                assert (await fetch(base + path, {"Authorization": "Bearer tok3n"}))[0] == 200
                assert (await fetch(base + path + ("&" if "?" in path else "?") + "token=tok3n"))[0] == 200
            _, headers, body = await fetch(base + "/?token=tok3n")
            assert "static/inspector.js" in body and headers["Content-Type"].startswith("text/html")
            assert "script-src 'self'" in headers["Content-Security-Policy"]  # nothing from elsewhere
            assert headers["Referrer-Policy"] == "no-referrer"
            for asset in ("/static/inspector.js", "/static/inspector.css"):  # public files, no data
                assert (await fetch(base + asset))[0] == 200
            assert (await fetch(base + "/static/../inspector.py"))[0] == 404
            assert (await fetch(base + "/api/picture?file=none.yaml&token=tok3n"))[0] == 404
        async with inspected(graphs, token="tok3n", public=True) as (_, base):
            assert (await fetch(base + "/api/graphs"))[0] == 200
        async with inspected(graphs) as (_, base):  # no token: loopback only, and only by a loopback name
            assert (await fetch(base + "/api/graphs"))[0] == 200
            assert (await fetch(base + "/", {"Host": "rebound.example:80"}))[0] == 403

    asyncio.run(scenario())


def test_no_parameter_value_and_no_payload_reaches_the_inspector(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, so no directory can be made under it\n")
    (graphs / "vault.yaml").write_text(VAULT)
    (graphs / "broken.yaml").write_text(broken_sink(blocker))

    async def scenario() -> None:
        async with inspected(graphs) as (s, base):
            (graphs / "bad.yaml").write_text(REJECTED)
            await s.until(lambda: "rejected" in s.results("bad.yaml"), what="bad.yaml rejected")
            reading = await api(base)
            shown = by_name(reading)
            assert shown["broken_sink"]["state"] == "failed"
            failure = shown["broken_sink"]["failure"]
            assert failure.startswith("node 'out' (file.write): cannot write ****: ") and SECRET not in failure
            assert shown["bad"]["state"] == "rejected" and shown["bad"]["last_result"] == "rejected"
            assert any("'****'" in p for p in shown["bad"]["problems"])
            details = [f["detail"] for f in reading["failures"]]
            assert any(d.startswith("graph 'broken_sink' failed: node 'out' (file.write)") for d in details)
            assert any(d.startswith("bad.yaml: rejected: ") for d in details)
            texts = [await fetch(base + path) for path in
                     ("/", "/api/graphs", "/static/inspector.js", "/api/picture?file=vault.yaml",
                      "/api/picture?file=broken.yaml")]
            assert all(status == 200 for status, _, _ in texts)
            for _, _, text in texts:
                assert SECRET not in text and "tok-" not in text

    asyncio.run(scenario())


def test_the_numbers_are_those_of_engine_ctl_status(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "shop.yaml").write_text(SHOP)

    async def scenario() -> None:
        async with inspected(graphs) as (s, base):
            await s.until(lambda: s.host.graphs["shop.yaml"].state == "finished", what="shop finished")
            ctl = await ControlService(s.server, s.host, None, False, 1.0).GetGraph(
                pb.GetGraphRequest(graph="shop"), None)  # type: ignore[arg-type]
            shown = by_name(await api(base))["shop"]
            summary = ctl.summary
            assert (shown["file"], shown["state"], shown["plan_hash"], shown["last_result"]) == (
                summary.file, summary.state, summary.plan_hash, summary.last_result)
            assert (shown["loaded_at"], shown["last_reload_at"]) == (summary.loaded_at, summary.last_reload_at)
            assert [(n["name"], n["type"], n["state"], n["in"], n["out"], n["errors"], n["busy_s"], n["ports"])
                    for n in shown["nodes"]] == [
                (n.name, n.type, n.state, n.events_in, n.events_out, n.errors, n.busy_seconds,
                 dict(n.events_out_by_port)) for n in ctl.nodes]
            assert [(e["id"], e["policy"], e["depth"], e["capacity"], e["enqueued"], e["dropped"], e["coalesced"],
                     e["high_water"], e["blocked_s"]) for e in shown["edges"]] == [
                (e.id, e.policy, e.depth, e.capacity, e.enqueued, e.dropped, e.coalesced, e.high_water,
                 e.blocked_seconds) for e in ctl.edges]
            stats = s.host.graphs["shop.yaml"].runtime.stats()
            errors = {n["name"]: n["errors"] for n in shown["nodes"]}
            assert errors["priced"] == stats["nodes"]["priced"]["errors"] == 10  # type: ignore[index]

    asyncio.run(scenario())


def test_readings_during_reloads_see_whole_graphs_and_never_block_the_loop(tmp_path):
    """While the file flips between two versions (partial reloads that add and remove a node),
    every reading holds exactly one version's nodes and edges, and the loop keeps its pace."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    one = ticking_graph(tmp_path / "t.jsonl", "t", rate=2000, name="flip")
    two = one.replace("  out: {type: file.write, from: ticks,",
                      "  mid: {type: map, from: ticks, with: {set: {m: n}}}\n  out: {type: file.write, from: mid,")
    versions = {}
    for text in (one, two):
        plan = load_text("flip.yaml", text, runtime_support.test_registry()).plan
        assert plan is not None
        versions[plan.content_hash()] = ({n.name for n in plan.nodes}, {e.id for e in plan.edges})
    (graphs / "flip.yaml").write_text(one)

    async def scenario() -> None:
        async with inspected(graphs) as (s, base):
            stop = threading.Event()
            seen: list[tuple[str, set[str], set[str]]] = []
            slowest: list[float] = []

            def hammer() -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    status, _, body = get(base + "/api/graphs")
                    slowest.append(time.monotonic() - started)
                    assert status == 200, body
                    for g in json.loads(body)["graphs"]:
                        seen.append((g["plan_hash"], {n["name"] for n in g["nodes"]}, {e["id"] for e in g["edges"]}))

            polling = [asyncio.ensure_future(asyncio.to_thread(hammer)) for _ in range(3)]
            lag = 0.0
            for i in range(6):
                write_atomically(graphs / "flip.yaml", two if i % 2 == 0 else one)
                before = len(s.results("flip.yaml"))
                deadline = time.monotonic() + 10
                while len(s.results("flip.yaml")) == before:
                    assert time.monotonic() < deadline, "the reload never came"
                    tick = time.monotonic()
                    await asyncio.sleep(0.01)
                    lag = max(lag, time.monotonic() - tick - 0.01)
            stop.set()
            await asyncio.gather(*polling)
            assert s.results("flip.yaml")[1:] == ["updated"] * 6
            assert len(seen) > 20 and max(slowest) < 2.0
            for plan_hash, nodes, edges in seen:
                assert (nodes, edges) == versions[plan_hash]  # one whole version, never a mix
            assert {h for h, _, _ in seen} == set(versions)
            assert lag < 1.0, f"the loop stalled for {lag:.3f}s"

    asyncio.run(scenario())


# -- `engine serve` ----------------------------------------------------------------------------

@pytest.fixture
def served(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "a", name="alpha"))
    port = free_port()
    env = {"HEADRACE_INSPECTOR_ADDRESS": f"127.0.0.1:{port}", "HEADRACE_CONTROL_ADDRESS": "127.0.0.1:0",
           "HEADRACE_CONTROL_TOKEN": "tok3n", "HEADRACE_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": str(ROOT)}
    return tmp_path, port, env


def _answer(url: str) -> str:
    try:
        return get(url)[2]
    except OSError:  # not listening yet
        return ""


def test_engine_serve_serves_the_inspector_behind_the_control_token(served):
    tmp_path, port, env = served
    base = f"http://127.0.0.1:{port}"
    proc = engine("serve", "graphs", env=env, cwd=tmp_path)
    try:
        wait_for(lambda: '"alpha"' in _answer(base + "/api/graphs?token=tok3n"), timeout=30)
        assert get(base + "/api/graphs")[0] == 401
        assert get(base + "/", {"Authorization": "Bearer tok3n"})[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"inspector on http://127.0.0.1:{port}/" in err


@pytest.mark.parametrize(("address", "extra", "message"), [
    ("0.0.0.0:{port}", {"HEADRACE_CONTROL_TOKEN": ""}, "refusing to serve the inspector on 0.0.0.0"),
    ("127.0.0.1:{busy}", {}, "cannot serve the inspector on 127.0.0.1"),
    ("nonsense", {}, "HEADRACE_INSPECTOR_ADDRESS: must be HOST:PORT"),
])
def test_a_bad_inspector_address_stops_start_up_with_one_line(served, address, extra, message):
    tmp_path, port, env = served
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**env, **extra, "HEADRACE_INSPECTOR_ADDRESS": address.format(port=port, busy=busy.getsockname()[1])}
        env = {k: v for k, v in env.items() if v != ""}
        proc = engine("serve", "graphs", env=env, cwd=tmp_path)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("engine: error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "a.jsonl").exists()  # nothing else started


# -- CI installs chromium ----------------------------------------------------------------------

def install_chromium(tmp_path: Path, apt_get: str) -> subprocess.CompletedProcess[str]:
    """.ci/install-chromium with a stand-in apt-get (and sudo), looking for a driver and a
    browser that only the stand-in can make."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"apt-get $*\" >> {tmp_path}/apt.log\n{apt_get}\n")
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               CHROMEDRIVER=str(bin_dir / "headrace-test-driver"), CHROMIUM="headrace-test-chromium")
    return subprocess.run(["bash", str(ROOT / ".ci/install-chromium")], env=env, capture_output=True, text=True,
                          timeout=60)


def test_install_chromium_fails_when_apt_get_fails(tmp_path):
    done = install_chromium(tmp_path, 'case "$1" in install) exit 100;; esac')
    assert done.returncode == 1
    assert done.stderr.startswith("error: could not install Debian's chromium and chromium-driver: "
                                  "apt-get install chromium chromium-driver failed.")
    assert (tmp_path / "apt.log").read_text().splitlines() == [
        "apt-get update -qq", "apt-get install -y -qq chromium chromium-driver"]


def test_install_chromium_installs_only_when_missing(tmp_path):
    made = " ".join(f"printf '#!/bin/sh\\n' > {tmp_path}/bin/{name}; chmod +x {tmp_path}/bin/{name};"
                    for name in ("headrace-test-driver", "headrace-test-chromium"))
    assert install_chromium(tmp_path, f'case "$1" in install) {made} ;; esac').returncode == 0
    assert install_chromium(tmp_path, "exit 100").returncode == 0
    assert len((tmp_path / "apt.log").read_text().splitlines()) == 2  # update and install, once


def test_ci_run_installs_chromium_before_the_tests():
    lines = (ROOT / ".ci/run").read_text().splitlines()
    first_test = next(i for i, line in enumerate(lines) if "pytest" in line and not line.startswith("#"))
    assert lines.index("bash .ci/install-chromium") < first_test  # a plain command: under set -e it stops CI


# -- the page in a headless browser ------------------------------------------------------------

def shipped_graphs(into: Path) -> list[str]:
    """The shipped graphs, less http_bridge (it listens on 8080), copied into `into`; their names."""
    into.mkdir()
    names = []
    for path in sorted((ROOT / "graphs").glob("*.yaml")):
        if path.name.endswith(".test.yaml") or path.name == "http_bridge.yaml":
            continue
        shutil.copy(path, into / path.name)
        plan = load_text(path.name, path.read_text(), runtime_support.test_registry()).plan
        assert plan is not None
        names.append(plan.name)
    shutil.copytree(ROOT / "graphs" / "data", into / "data")
    return names


def browse(url: str, names: list[str]) -> dict[str, Any]:
    """Open the page in headless chromium; wait for every graph's picture, then for the
    ticking graph's counter to go up; what the page showed."""
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1440,1500", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    # The driver's path given: Selenium Manager is never asked for one (and SE_OFFLINE keeps it offline).
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(url)
        # The page redraws its tables every second: an element found just before a redraw is
        # stale when read. Waits ignore that; direct reads take the next drawing.
        wait = WebDriverWait(driver, 30, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))

        def steady(read: Callable[[], T]) -> T:
            for _ in range(100):
                try:
                    return read()
                except StaleElementReferenceException:
                    time.sleep(0.02)
            return read()
        wait.until(lambda d: all(d.find_elements(By.CSS_SELECTOR, f'section.graph[data-graph="{n}"] .picture svg')
                                 for n in names))

        def ticks_out() -> int:
            def read() -> int:
                cell = driver.find_element(By.CSS_SELECTOR,
                                           'section[data-graph="ticker"] tr[data-node="ticks"] td[data-field="out"]')
                return int(cell.text)
            return steady(read)

        first = ticks_out()
        wait.until(lambda d: ticks_out() > first)
        second = ticks_out()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'section[data-graph="quickstart"] h2 .badge').text
                   == "finished")
        out_cell = 'td[data-field="out"]'

        def quickstart_rows() -> dict[str | None, int]:
            rows = driver.find_elements(By.CSS_SELECTOR, 'section[data-graph="quickstart"] table.nodes tbody tr')
            return {row.get_attribute("data-node"): int(row.find_element(By.CSS_SELECTOR, out_cell).text)
                    for row in rows}
        quickstart = steady(quickstart_rows)
        ticks = 'section[data-graph="ticker"] g[data-node="ticks"] '
        counts = steady(lambda: driver.find_element(By.CSS_SELECTOR, ticks + "text.counts").text)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ticks + "text.rate").text not in ("", "-/s"))
        # The paused sink's edge fills up: its bar turns red, as NiFi colours a full queue.
        full = 'section[data-graph="backlog"] g[data-edge="ticks->out"] rect.fill.red'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, full))
        shown = {
            "first": first, "second": second, "quickstart": quickstart, "counts": counts,
            "headings": [h.text for h in driver.find_elements(By.CSS_SELECTOR, "section.graph h2 .name")],
            "listed": [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#graph-list a")],
            "pictures": len(driver.find_elements(By.CSS_SELECTOR, "section.graph .picture svg")),
            "fill_bars": len(driver.find_elements(By.CSS_SELECTOR, "section.graph svg rect.fill.green")),
            "red_width": float(driver.find_element(By.CSS_SELECTOR, full).get_attribute("width") or 0),
            "rate": driver.find_element(By.CSS_SELECTOR, ticks + "text.rate").text,
            "status": driver.find_element(By.ID, "status").text,
            "source": driver.page_source,
        }
        if os.environ.get("HEADRACE_WRITE_SCREENSHOT") == "1":  # docs/inspector.png, made on purpose only
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(SCREENSHOT))
        return shown
    finally:
        driver.quit()


def test_the_page_shows_the_shipped_graphs_live_in_a_headless_browser(tmp_path, monkeypatch):
    require(CHROMEDRIVER.is_file() and os.access(CHROMEDRIVER, os.X_OK) and shutil.which("chromium"),
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver; "
            "CI runs .ci/install-chromium)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        require(False, "selenium is not installed (pip install -e '.[dev]')")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager may never go online
    monkeypatch.chdir(tmp_path)  # the shipped graphs name their data files from the repository root
    names = shipped_graphs(tmp_path / "graphs")
    (tmp_path / "graphs" / "ticker.yaml").write_text(
        ticking_graph(tmp_path / "ticks.jsonl", f"payload-{SECRET}", rate=50, name="ticker"))
    (tmp_path / "graphs" / "backlog.yaml").write_text(BACKLOG.format(out=tmp_path / "backlog.jsonl"))

    async def scenario() -> dict[str, Any]:
        async with inspected(tmp_path / "graphs", token="tok3n", state_dir=tmp_path / "state") as (s, base):
            s.host.graphs["backlog.yaml"].runtime.controls.pause("out")  # what `engine ctl pause` does
            shown = await asyncio.to_thread(browse, base + "/?token=tok3n", [*names, "ticker", "backlog"])
            stats = s.host.graphs["quickstart.yaml"].runtime.stats()["nodes"]
            assert shown["quickstart"] == {name: c["out"] for name, c in stats.items()}  # type: ignore[union-attr]
            return shown

    started = time.monotonic()
    shown = asyncio.run(scenario())
    assert set(shown["headings"]) == set(shown["listed"]) == {*names, "ticker", "backlog"}
    assert shown["pictures"] == len(names) + 2 and shown["fill_bars"] > 0 and shown["red_width"] > 0
    assert shown["second"] > shown["first"] > 0
    assert shown["counts"].startswith("in 0 · out ") and shown["rate"].endswith("/s")
    assert "updated" in shown["status"]
    assert SECRET not in shown["source"] and "payload-" not in shown["source"]  # neither payload nor parameter
    print(f"browser test: {time.monotonic() - started:.1f}s")
