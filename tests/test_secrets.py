"""Secret parameters are never printed: `engine plan`, failures, log lines, the stats, the
loader's own problems; URL and DSN passwords wherever they turn up."""

import asyncio
import json
import logging

import pytest

from adapters.cli.registry import default_registry
from adapters.serve.logs import MaskSecrets
from engine.errors import NodeErrors
from engine.node import ManualClock, NodeContext
from engine.plan import ErrorPolicy
from engine.secrets import MASK, mask_known, mask_value, masked_params, secret_texts
from loader.api import load_text
from tests.runtime_support import build
from tests.runtime_support import test_registry as registry_with_test_types

PASSWORD = "hunter2-Secret"


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://etl:s3cr3t@db:5432/app", "postgresql://etl:****@db:5432/app"),
    ("redis://:s3cr3t@cache:6379/0", "redis://:****@cache:6379/0"),
    ("rediss://user:p%40ss@cache", "rediss://user:****@cache"),
    ("host=db dbname=app password=s3cr3t user=etl", "host=db dbname=app password=**** user=etl"),
    ("host=db password = 'two words' port=5432", "host=db password = **** port=5432"),
    ("postgresql://db/app?user=etl&password=s3cr3t&sslmode=require",
     "postgresql://db/app?user=etl&password=****&sslmode=require"),
    ("cannot connect to nats://u:s3cr3t@n1:4222, nats://n2:4222", "cannot connect to nats://u:****@n1:4222, "
     "nats://n2:4222"),
    ("postgresql://etl@db/app", "postgresql://etl@db/app"),  # no password: nothing to hide
    ("mqtt://broker:1883", "mqtt://broker:1883"),
    ("a plain line", "a plain line"),
])
def test_mask_value_hides_only_the_password(text, shown):
    assert mask_value(text) == shown


def test_masked_params_hide_secret_parameters_and_keep_the_rest():
    registry = default_registry()
    post = registry.get("http.post")
    listen = registry.get("http.listen")
    params = {"url": "https://bot:tok3n@collector.example.com/in", "batch_size": 10,
              "headers": {"Authorization": "Bearer abc", "X-Team": "data"}}
    assert masked_params(post, params) == {"url": "https://bot:****@collector.example.com/in", "batch_size": 10,
                                           "headers": {"Authorization": MASK, "X-Team": MASK}}
    assert masked_params(listen, {"token": "t0ken-value", "path": "/events"}) == {"token": MASK, "path": "/events"}
    assert params["headers"] == {"Authorization": "Bearer abc", "X-Team": "data"}  # a copy: the plan is untouched


def test_secret_texts_are_the_literals_to_take_out_of_messages():
    spec = registry_with_test_types().get("test.linked")
    assert secret_texts(spec, {"url": f"redis://:{PASSWORD}@localhost:6379"}) == (PASSWORD,)
    post = default_registry().get("http.post")
    assert secret_texts(post, {"headers": {"Authorization": "Bearer abcdef"}}) == ("Bearer abcdef",)
    assert mask_known(f"login as {PASSWORD} failed", (PASSWORD,)) == "login as **** failed"


GRAPH = f"""version: 2
nodes:
  ingest:
    type: http.listen
    with: {{address: "127.0.0.1:0", token: "{PASSWORD}"}}
  out:
    type: http.post
    from: ingest
    with:
      url: "https://bot:{PASSWORD}@collector.example.com/in"
      headers: {{Authorization: "Bearer {PASSWORD}"}}
"""


def test_engine_plan_prints_secrets_masked_and_the_real_hash(cli, tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(GRAPH)
    code, out, _ = cli("plan", str(path))
    assert code == 0
    assert PASSWORD not in out
    plan = json.loads(out)
    assert plan["nodes"]["ingest"]["with"]["token"] == MASK
    assert plan["nodes"]["out"]["with"]["url"] == "https://bot:****@collector.example.com/in"
    assert plan["nodes"]["out"]["with"]["headers"] == {"Authorization": MASK}
    loaded = load_text(str(path), GRAPH, default_registry())
    assert loaded.plan is not None and plan["hash"] == loaded.plan.content_hash()


def test_a_failure_naming_the_url_is_masked():
    runtime = build(f"""
        version: 2
        nodes:
          src: {{type: test.linked, with: {{url: "redis://:{PASSWORD}@localhost:6379/0", refuse: true}}}}
          out: {{type: test.record, from: src}}
        """)
    assert not asyncio.run(runtime.run())
    assert runtime.failure == "node 'src': cannot connect to redis://:****@localhost:6379/0: authentication failed"


def test_a_secret_in_a_failure_message_is_masked_even_without_a_url():
    runtime = build(f"""
        version: 2
        nodes:
          src: {{type: test.linked, with: {{url: "redis://:{PASSWORD}@localhost:6379/0"}}}}
          out: {{type: test.record, from: src}}
        """)
    runtime.fail(f"node 'src': the server said {PASSWORD} is wrong")
    assert runtime.failure == "node 'src': the server said **** is wrong"


def test_node_error_lines_and_dead_letters_are_masked(caplog):
    ctx = NodeContext("sink", "test.sink", {}, ("out", "errors"), ErrorPolicy("dead_letter"), ManualClock(),
                      "g", (PASSWORD,))
    outs: list[list[dict[str, object]]] = [[], []]
    NodeErrors(ctx).events_failed([{"n": 1}], f"refused by postgresql://etl:{PASSWORD}@db/app", outs)
    assert outs[1] == [{"node": "sink", "error": "refused by postgresql://etl:****@db/app", "event": {"n": 1}}]
    dropping = NodeContext("sink", "test.sink", {}, ("out",), ErrorPolicy("drop"), ManualClock(), "g", (PASSWORD,))
    with caplog.at_level(logging.WARNING, logger="headrace"):
        NodeErrors(dropping).event_failed({"n": 1}, f"login {PASSWORD} refused", [[]])
    assert PASSWORD not in caplog.text and "login **** refused" in caplog.text


def test_the_log_filter_masks_any_url_password():
    record = logging.LogRecord("headrace", logging.WARNING, __file__, 1, "lost %s", ("redis://:pw99@cache",), None)
    assert MaskSecrets().filter(record)
    assert record.getMessage() == "lost redis://:****@cache"


def test_validate_never_quotes_a_secret_value():
    text = ("version: 2\nnodes:\n  ingest: {type: http.listen, with: {token: 123456789}}\n"
            "  out: {type: stdout, from: ingest}\n"
            "  post: {type: http.post, from: ingest, with: {url: \"ftp://u:hunter22@x\"}}\n")
    result = load_text("g.yaml", text, default_registry())
    messages = " ".join(p.message + p.hint for p in result.problems)
    assert {p.code for p in result.problems} >= {"HR022", "HR025"}
    assert "123456789" not in messages and "hunter22" not in messages
