"""Refused control calls in the audit log: the limits that keep a flood from filling the disk
(`adapters.control.refusals`), on a fake clock. The same against a real control plane is in
tests/test_control_refusals.py."""

import json
import logging

import pytest

from adapters.control.audit import AuditLog, verify
from adapters.control.refusals import RefusedAttempts, method_name, peer_host


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def refusals(path, clock, **limits):
    return RefusedAttempts(AuditLog(path), window_s=60.0, clock=clock, **limits)


def attempts_counted(rows) -> int:
    """Refused calls the file accounts for: one per written line, `count` per summary."""
    return sum(row.get("count", 1) for row in rows)


@pytest.mark.parametrize(("peer", "host"), [
    ("ipv4:10.0.0.7:53122", "ipv4:10.0.0.7"),
    ("ipv6:[::1]:40000", "ipv6:[::1]"),
    ("ipv6:%5B::1%5D:40000", "ipv6:%5B::1%5D"),
    ("unix:/run/headrace.sock", "unix:/run/headrace.sock"),
    ("ipv4:10.0.0.7", "ipv4:10.0.0.7"),
])
def test_the_peer_host_leaves_the_port_out(peer, host):
    assert peer_host(peer) == host


def test_method_names():
    assert method_name("/headrace.control.v1.Control/Pause") == "Pause"
    assert method_name("/headrace.control.v1.Control/DropEverything") == "DropEverything"
    assert method_name("/other.Service/Call") == "/other.Service/Call"
    long = "/x/" + "y" * 500
    assert method_name(long) == long[:120] + "…"


def test_a_refused_call_is_one_record_in_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("token", "Pause", "orders", "ok")
    RefusedAttempts(log).refused("anonymous@ipv4:10.0.0.7:53122", "ipv4:10.0.0.7:53122",
                                 "/headrace.control.v1.Control/Apply", "wrong token")
    accepted, refused = records(path)
    assert list(accepted) == ["time", "principal", "method", "target", "result", "prev", "hash"]  # as before
    assert list(refused) == ["time", "principal", "peer", "method", "target", "result", "detail", "prev", "hash"]
    assert {k: refused[k] for k in ("principal", "peer", "method", "target", "result", "detail")} == {
        "principal": "anonymous@ipv4:10.0.0.7:53122", "peer": "ipv4:10.0.0.7:53122", "method": "Apply",
        "target": "", "result": "unauthenticated", "detail": "wrong token"}
    assert refused["prev"] == accepted["hash"]
    assert verify(path) == []


def test_a_flood_from_one_host_writes_a_few_lines_and_a_summary(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = Clock()
    limiter = refusals(path, clock)
    for n in range(1000):  # each from a new connection: a new port every time
        clock.now += 0.01
        limiter.refused(f"anonymous@ipv4:10.0.0.7:{20000 + n}", f"ipv4:10.0.0.7:{20000 + n}",
                        "/headrace.control.v1.Control/Pause", "wrong token")
    assert len(records(path)) == 5  # per peer and reason in a window
    limiter.flush()  # the window is not over: nothing yet
    assert len(records(path)) == 5
    clock.now += 51
    limiter.flush()
    rows = records(path)
    assert len(rows) == 6
    assert {k: rows[-1][k] for k in ("principal", "peer", "method", "target", "result", "detail", "count")} == {
        "principal": "anonymous", "peer": "ipv4:10.0.0.7", "method": "*", "target": "", "result": "unauthenticated",
        "detail": "995 more refused attempts from ipv4:10.0.0.7 (wrong token) in the last 61 s", "count": 995}
    assert attempts_counted(rows) == 1000
    assert verify(path) == []


def test_each_reason_has_its_own_allowance_and_the_next_window_starts_afresh(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = Clock()
    limiter = refusals(path, clock, per_peer=2)
    for reason in ("no token", "wrong token", "no token", "wrong token", "no token"):
        limiter.refused("anonymous@ipv4:10.0.0.7:1", "ipv4:10.0.0.7:1", "/headrace.control.v1.Control/Pause", reason)
    assert [r["detail"] for r in records(path)] == ["no token", "wrong token", "no token", "wrong token"]
    clock.now += 60
    limiter.refused("anonymous@ipv4:10.0.0.7:2", "ipv4:10.0.0.7:2", "/headrace.control.v1.Control/Pause", "no token")
    assert [r["detail"] for r in records(path)[4:]] == [
        "1 more refused attempts from ipv4:10.0.0.7 (no token) in the last 60 s",  # the old window's summary first
        "no token"]  # then the new window's first line
    assert verify(path) == []


def test_many_hosts_are_bounded_per_window_too(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = Clock()
    limiter = refusals(path, clock, per_peer=5, per_window=20, summaries=10)
    for n in range(10_000):
        host = f"10.0.{n % 200 // 100}.{n % 100}"  # 200 hosts, 50 calls each
        limiter.refused(f"anonymous@ipv4:{host}:1", f"ipv4:{host}:1", "/headrace.control.v1.Control/Pause", "no token")
    limiter.close()
    rows = records(path)
    assert len(rows) == 20 + 10 + 1
    summaries = [r for r in rows if "count" in r]
    # 20 hosts got a line each before the window's lines ran out; the largest counts are summed up by host
    assert [r["count"] for r in summaries[:10]] == [50] * 10
    assert summaries[-1]["detail"] == "9480 more refused attempts from 190 other peers in the last 1 s"
    assert "peer" not in summaries[-1]
    assert attempts_counted(rows) == 10_000
    assert verify(path) == []


def test_past_max_peers_the_rest_is_counted_together(tmp_path):
    path = tmp_path / "audit.jsonl"
    limiter = refusals(path, Clock(), per_peer=1, per_window=2, summaries=1, max_peers=3)
    for n in range(10):
        limiter.refused(f"anonymous@ipv4:10.0.0.{n}:1", f"ipv4:10.0.0.{n}:1", "/x/Y", "no token")
    limiter.close()
    rows = records(path)
    assert [r["detail"] for r in rows] == [
        "no token", "no token",
        "1 more refused attempts from ipv4:10.0.0.2 (no token) in the last 1 s",
        "7 more refused attempts from 0 other peers and more in the last 1 s"]
    assert attempts_counted(rows) == 10


def test_a_quiet_window_writes_nothing(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = Clock()
    limiter = refusals(path, clock)
    limiter.refused("anonymous@ipv4:10.0.0.7:1", "ipv4:10.0.0.7:1", "/headrace.control.v1.Control/Pause", "no token")
    assert limiter.seconds_left() == 60.0
    clock.now += 45
    assert limiter.seconds_left() == 15.0
    clock.now += 600
    limiter.flush()
    limiter.close()
    assert len(records(path)) == 1  # nothing went over: no summary


def test_a_write_that_fails_is_warned_about_and_the_call_still_refused(tmp_path, caplog):
    path = tmp_path / "gone"
    limiter = refusals(path, Clock())
    path.unlink()
    path.mkdir()  # the file is now a directory: every write fails (as root too)
    with caplog.at_level(logging.WARNING, logger="headrace"):
        limiter.refused("anonymous@ipv4:10.0.0.7:1", "ipv4:10.0.0.7:1", "/x/Y", "no token")
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot write a refused control call to the audit log {path}: Is a directory"]
