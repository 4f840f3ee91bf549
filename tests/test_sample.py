"""The `sample` node: which events it keeps, the same on every run and fused or not."""

from hypothesis import given
from hypothesis import strategies as st

from engine.node import Failures, ManualClock, NodeContext
from engine.plan import ErrorPolicy
from engine.sample import SAMPLE, Sample
from engine.stable_hash import stable_hash
from tests.runtime_support import RECORDED, run_graph


class NoFailures(Failures):
    def event_failed(self, event, message, outs):
        raise AssertionError(message)


def sample(**params: object) -> Sample:
    return Sample(NodeContext("s", "sample", SAMPLE.parse(params), ("out",), ErrorPolicy(), ManualClock()))


def kept(node: Sample, batch: list[dict]) -> list[dict]:
    outs: list[list[dict]] = [[]]
    assert node.process(batch, outs, NoFailures()) == len(batch)
    return outs[0]


KEYS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                 st.lists(st.integers(), max_size=3))


@given(st.lists(KEYS, max_size=30), st.integers(min_value=1, max_value=7))
def test_a_key_is_kept_exactly_when_its_stable_hash_is_a_multiple_of_rate(keys, rate):
    batch = [{"user": key, "n": n} for n, key in enumerate(keys)]
    assert kept(sample(rate=rate, key="user"), batch) == [e for e in batch if stable_hash(e["user"]) % rate == 0]


def test_several_key_fields_hash_as_the_list_of_their_values():
    batch = [{"a": a, "b": b} for a in range(10) for b in "xyz"]
    assert kept(sample(rate=3, key=["a", "b"]), batch) == [
        e for e in batch if stable_hash([e["a"], e["b"]]) % 3 == 0]


def test_every_event_of_a_kept_key_is_kept_and_rate_one_keeps_all():
    batch = [{"user": f"u{i % 20}", "i": i} for i in range(200)]
    out = kept(sample(rate=4, key="user"), batch)
    users = {e["user"] for e in out}
    assert 0 < len(users) < 20
    assert out == [e for e in batch if e["user"] in users]
    assert kept(sample(rate=1, key="user"), batch) == batch


def test_a_key_with_a_lone_surrogate_is_hashed_not_a_crash():
    # JSON input may hold "\ud800", which strict UTF-8 cannot encode: it stopped the graph.
    batch = [{"user": "\ud800"}, {"user": "a\udfff", "n": 1}, {"user": {"k": ["\ud83d"]}}]
    assert kept(sample(rate=1, key="user"), batch) == batch
    assert stable_hash("\ud800") == stable_hash("\ud800") != stable_hash("\udfff")
    assert 0 <= stable_hash({"k": ["\ud83d"]}) < 2 ** 64


def test_random_sampling_repeats_with_its_seed():
    batch = [{"i": i} for i in range(1000)]
    first = kept(sample(rate=10, seed=3), batch)
    assert first == kept(sample(rate=10, seed=3), batch)
    assert first != kept(sample(rate=10, seed=4), batch)
    assert 60 < len(first) < 140


GRAPH = """
version: 2
nodes:
  events:
    type: generate
    with: {count: 3000, seed: 5, fields: {i: i, user: "'u' + str(i % 97)", r: rand()}}
  keep:
    type: sample
    from: events
    with: SAMPLE
  big:
    type: filter
    from: keep
    with: {where: "i % 2 == 0"}
  out:
    type: test.record
    from: big
"""


def run(params: str, fuse: bool) -> tuple[list[dict], dict]:
    runtime, ok = run_graph(GRAPH.replace("SAMPLE", params), fuse=fuse)
    assert ok, runtime.failure
    stats = runtime.stats()["nodes"]["keep"]  # type: ignore[index]
    return RECORDED["out"], {k: stats[k] for k in ("in", "out", "ports")}


def test_fused_and_unfused_keep_the_same_events_by_key_and_at_random():
    for params in ("{rate: 5, key: user}", "{rate: 5, seed: 11}"):
        fused, unfused = run(params, True), run(params, False)
        assert fused == unfused
        assert 0 < len(fused[0]) < 1500
    keyed = run("{rate: 5, key: user}", True)[0]
    assert keyed == [e for e in keyed if stable_hash(e["user"]) % 5 == 0]


def test_sample_fuses_into_the_chain():
    runtime, ok = run_graph(GRAPH.replace("SAMPLE", "{rate: 2}"))
    assert ok
    assert [s.members for s in runtime.segments] == [["events", "keep", "big"]]


def test_sample_has_no_keyed_state():
    assert SAMPLE.state_key is None
