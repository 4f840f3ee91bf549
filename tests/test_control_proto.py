"""The committed control-plane stubs are what the committed proto generates."""

import tempfile
from pathlib import Path

from adapters.control.generate import OUTPUTS, generate
from tests.conftest import ROOT


def test_committed_stubs_match_the_proto():
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        for name in OUTPUTS:
            assert (ROOT / name).read_text() == (Path(tmp) / name).read_text(), (
                f"{name} is stale: run `python -m adapters.control.generate` and commit the result")


def test_the_service_is_versioned_and_has_every_method():
    from adapters.control.v1 import control_pb2

    service = control_pb2.DESCRIPTOR.services_by_name["Control"]
    assert service.full_name == "headrace.control.v1.Control"
    assert sorted(m.name for m in service.methods) == sorted([
        "ListGraphs", "GetGraph", "Pause", "Resume", "Drain", "Reload", "Apply", "Remove", "Tap", "WatchEvents",
        "GetLogs", "GetPlan"])
