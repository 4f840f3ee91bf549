"""docs/prometheus/: Prometheus accepts the scrape config and the alert rules, the rules fire
when they should, and every metric they and docs/observability.md name is one the engine
serves, and the documentation's table lists every metric the engine serves.

promtool comes from Debian's `prometheus` package (.ci/install-promtool); without it the
promtool tests skip, which fails a CI run (tests/conftest.py). The name checks need no
promtool: they read a real collector's output for a graph run here.
"""

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from adapters.gpu.config import GpuConfig
from adapters.observe.metrics import metrics_registry
from adapters.observe.snapshot import graph_view, stamped
from adapters.storage.durable import durable_factory
from tests.conftest import ROOT, require
from tests.runtime_support import build
from tests.runtime_support import test_registry as base_registry

PROMETHEUS = ROOT / "docs" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
ALERTS = PROMETHEUS / "alerts.yml"
DOC = ROOT / "docs" / "observability.md"
TOKEN_FILE = "/etc/prometheus/secrets/headrace-token"  # what prometheus.yml reads the token from
NO_PROMTOOL = "promtool is not installed: run .ci/install-promtool (Debian's prometheus package)"
METRIC = re.compile(r"\b(?:headrace|process|python)_[a-z_]+\b")
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself for every target

# Every kind of series the collector has: a GPU segment (on NumPy), a durable edge, a node
# that fails events into a dead-letter port, a connector (its connection), and a rejected reload.
GRAPH = """
    version: 2
    name: shop
    nodes:
      src: {type: generate, with: {count: 300, fields: {n: i, x: "float(i)"}}}
      scaled: {type: opencl.map, from: src, with: {columns: {n: int32, x: float32}, set: {y: x * 2}}}
      priced: {type: map, from: scaled, on_error: dead_letter, with: {set: {c: "int('x') if n % 50 == 0 else n"}}}
      out: {type: test.record, from: {node: priced, edge: {durable: true}}}
      dead: {type: test.record, from: priced.errors}
      linked: {type: test.linked, with: {url: "redis://localhost", count: 3}}
      linked_out: {type: test.record, from: {node: linked, edge: {durable: true}}}
    """


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    program = shutil.which("promtool")
    require(program, NO_PROMTOOL)
    assert program is not None
    done = subprocess.run([program, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_promtool_accepts_the_scrape_config_and_the_rules_it_loads(tmp_path: Path) -> None:
    """The whole check (the rule files it names, the token file) on a copy whose token file
    exists; the real file with --syntax-only, which leaves the token file unread."""
    config = CONFIG.read_text()
    assert TOKEN_FILE in config
    (tmp_path / "token").write_text("secret\n")
    (tmp_path / "prometheus.yml").write_text(config.replace(TOKEN_FILE, str(tmp_path / "token")))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    out = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "1 rule files found" in out and "SUCCESS" in out
    assert "SUCCESS" in promtool("check", "config", "--syntax-only", "prometheus.yml")


def test_promtool_accepts_the_alert_rules() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


RULE_TESTS = """
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="headrace",instance="e:9464"}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'headrace_graph_up{job="headrace",instance="e:9464",graph="a"}'
        values: '1 1 0 0 0 0'
      - series: 'headrace_graph_state{job="headrace",instance="e:9464",graph="a",state="failed"}'
        values: '0 0 1 1 1 1'
      - series: 'headrace_graph_up{job="headrace",instance="e:9464",graph="done"}'
        values: '0 0 0 0 0 0'
      - series: 'headrace_graph_state{job="headrace",instance="e:9464",graph="done",state="failed"}'
        values: '0 0 0 0 0 0'
      - series: 'headrace_reloads_total{job="headrace",instance="e:9464",graph="a",result="rejected"}'
        values: '_ _ _ 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 2 2 2'
      - series: 'headrace_edge_depth{job="headrace",instance="e:9464",graph="a",edge="x->y",policy="block"}'
        values: '1024x10'
      - series: 'headrace_edge_capacity{job="headrace",instance="e:9464",graph="a",edge="x->y",policy="block"}'
        values: '1024x10'
      - series: 'headrace_edge_blocked_seconds_total{job="headrace",instance="e:9464",graph="a",edge="x->y",
                  policy="block"}'
        values: '0+45x15'
      - series: 'headrace_node_errors_total{job="headrace",instance="e:9464",graph="a",node="n"}'
        values: '0+60x20'
      - series: 'headrace_node_events_in_total{job="headrace",instance="e:9464",graph="a",node="n"}'
        values: '0+600x20'
      - series: 'headrace_node_errors_total{job="headrace",instance="e:9464",graph="a",node="ok"}'
        values: '0+1x20'
      - series: 'headrace_node_events_in_total{job="headrace",instance="e:9464",graph="a",node="ok"}'
        values: '0+600x20'
    alert_rule_test:
      - {eval_time: 7m, alertname: HeadraceScrapeFailing,
         exp_alerts: [{exp_labels: {severity: critical, job: headrace, instance: "e:9464"}}]}
      - {eval_time: 5m, alertname: HeadraceGraphFailed,  # a finished graph is down too, but did not fail
         exp_alerts: [{exp_labels: {severity: critical, job: headrace, instance: "e:9464", graph: a}}]}
      - {eval_time: 4m, alertname: HeadraceReloadRejected,  # the graph's first rejection
         exp_alerts: [{exp_labels: {severity: warning, job: headrace, instance: "e:9464", graph: a,
                                    result: rejected}}]}
      - {eval_time: 19m, alertname: HeadraceReloadRejected}
      - {eval_time: 21m, alertname: HeadraceReloadRejected,  # a later one
         exp_alerts: [{exp_labels: {severity: warning, job: headrace, instance: "e:9464", graph: a,
                                    result: rejected}}]}
      - {eval_time: 4m, alertname: HeadraceEdgeFull}
      - {eval_time: 6m, alertname: HeadraceEdgeFull,
         exp_alerts: [{exp_labels: {severity: warning, job: headrace, instance: "e:9464", graph: a, edge: "x->y",
                                    policy: block}}]}
      - {eval_time: 14m, alertname: HeadraceEdgeBlocking,
         exp_alerts: [{exp_labels: {severity: warning, job: headrace, instance: "e:9464", graph: a, edge: "x->y",
                                    policy: block}}]}
      - {eval_time: 16m, alertname: HeadraceNodeErrors,  # 10% of n's events fail, 1 in 600 of ok's
         exp_alerts: [{exp_labels: {severity: warning, job: headrace, instance: "e:9464", graph: a, node: n}}]}
"""


def test_the_alert_rules_fire_when_they_should(tmp_path: Path) -> None:
    """`promtool test rules` on made-up series; the annotations are left out (promtool would
    compare them word for word), the expressions and `for` are the shipped ones."""
    yaml = YAML(typ="safe")
    rules = yaml.load(ALERTS)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    with (tmp_path / "alerts.yml").open("w") as out:
        yaml.dump(rules, out)
    (tmp_path / "alerts.test.yml").write_text(RULE_TESTS)
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS))
    assert tested == {rule["alert"] for rule in alert_rules()}


# -- the names, without promtool ------------------------------------------------------------


def served(tmp_path: Path) -> dict[str, int]:
    """Each name a scrape of a real collector holds (as Prometheus sees it: counters with
    `_total`) and how many samples it has."""
    runtime = build(GRAPH, base_registry(GpuConfig("numpy", "numpy")), durable=durable_factory(tmp_path / "state", 64))
    assert asyncio.run(runtime.run()), runtime.failure
    view = graph_view("shop", "shop.yaml", "finished", runtime)
    text = generate_latest(metrics_registry(lambda: stamped([view], {("shop", "rejected"): 1}))).decode()
    names: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        names[name] = len(family.samples)
        assert {sample.name for sample in family.samples} <= {name}, family
    return names


def alert_rules() -> list[dict[str, object]]:
    return [rule for group in YAML(typ="safe").load(ALERTS)["groups"] for rule in group["rules"]]


def doc_table() -> list[str]:
    """The metric column of docs/observability.md's table of metrics."""
    section = DOC.read_text().split("\n## The metrics\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \| (?:counter|gauge) \|", section, re.MULTILINE)


def test_the_collector_serves_a_sample_of_every_metric_for_this_graph(tmp_path: Path) -> None:
    names = served(tmp_path)
    empty = [name for name, count in names.items() if name.startswith("headrace_") and count == 0]
    assert empty == []  # so the checks below see every family with real series


def test_the_documentation_table_lists_exactly_the_metrics_the_engine_serves(tmp_path: Path) -> None:
    table = doc_table()
    assert len(table) == len(set(table)), "a metric is listed twice"
    assert set(table) == {name for name in served(tmp_path) if name.startswith("headrace_")}


def test_every_metric_the_documentation_names_is_served(tmp_path: Path) -> None:
    named = set(METRIC.findall(DOC.read_text()))
    assert {"headrace_graph_up", "process_cpu_seconds_total", "python_info"} <= named
    assert sorted(named - set(served(tmp_path))) == []


def test_every_metric_the_alert_rules_use_is_served(tmp_path: Path) -> None:
    names = set(served(tmp_path))
    for rule in alert_rules():
        expr = str(rule["expr"])
        used = set(METRIC.findall(expr)) | (PROMETHEUS_OWN & set(re.findall(r"\b\w+(?=\{)", expr)))
        assert used, rule["alert"]
        assert sorted(used - names - PROMETHEUS_OWN) == [], rule["alert"]


def test_the_scrape_config_shown_in_the_documentation_is_the_shipped_one() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    shown = [block for block in blocks if "scrape_configs:" in block]
    assert len(shown) == 1
    yaml = YAML(typ="safe")
    assert yaml.load(shown[0]) == yaml.load(CONFIG)
