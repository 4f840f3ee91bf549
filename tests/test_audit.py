"""The control plane's audit log: hash-chained JSON lines, `verify`, `engine audit verify`."""

import json
import os
import re

import pytest

from adapters.control.audit import GENESIS, AuditError, AuditLog, record_hash, verify
from adapters.control.auth import ControlSecurityError


def write_three(path):
    log = AuditLog(path)
    log.record("token", "Pause", "orders", "ok")
    log.record("CN=ops,O=Acme", "Apply", "orders.yaml", "applied", "plan sha256:9d1c0e1b4a2f")
    log.record("anonymous@ipv4:127.0.0.1:5000", "Remove", "alerts", "removed")
    return log


def lines(path):
    return path.read_text().splitlines(keepends=True)


def test_records_are_chained_json_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = write_three(path)
    records = [json.loads(line) for line in lines(path)]
    assert list(records[0]) == ["time", "principal", "method", "target", "result", "prev", "hash"]
    assert list(records[1]) == ["time", "principal", "method", "target", "result", "detail", "prev", "hash"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["time"])
    assert (records[1]["principal"], records[1]["method"], records[1]["target"], records[1]["result"],
            records[1]["detail"]) == ("CN=ops,O=Acme", "Apply", "orders.yaml", "applied", "plan sha256:9d1c0e1b4a2f")
    assert records[0]["prev"] == GENESIS
    assert [r["prev"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    for record in records:
        assert re.fullmatch(r"[0-9a-f]{64}", record["hash"])
        assert record["hash"] == record_hash(record)
    assert log.last_hash == records[-1]["hash"]
    assert verify(path) == []


def test_the_hash_is_sha256_of_the_canonical_json_without_hash():
    import hashlib

    record = {"time": "2026-01-01T00:00:00.000Z", "principal": "tökén", "method": "Pause", "target": "g",
              "result": "ok", "prev": GENESIS, "hash": "ignored"}
    canonical = ('{"method":"Pause","prev":"' + GENESIS + '","principal":"tökén","result":"ok","target":"g",'
                 '"time":"2026-01-01T00:00:00.000Z"}')
    assert record_hash(record) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_an_edited_field_is_found_with_its_line_number(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    text = lines(path)
    text[1] = text[1].replace('"applied"', '"rejected"')
    path.write_text("".join(text))
    assert verify(path) == [f"{path}:2: hash does not match the line's contents (edited?)"]


def test_an_edited_line_with_a_recomputed_hash_breaks_the_next_link(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    text = lines(path)
    record = json.loads(text[1])
    record["principal"] = "someone else"
    record["hash"] = record_hash(record)
    text[1] = json.dumps(record) + "\n"
    path.write_text("".join(text))
    assert verify(path) == [f"{path}:3: prev does not match line 2 (a line was removed or reordered)"]


@pytest.mark.parametrize(("keep", "problem"), [
    ([0, 2], "2: prev does not match line 1 (a line was removed or reordered)"),
    ([1, 2], "1: prev is not the start of a chain (lines before it were removed?)"),
    ([0, 2, 1], "2: prev does not match line 1 (a line was removed or reordered)"),
])
def test_a_removed_or_reordered_line_is_found(tmp_path, keep, problem):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    text = lines(path)
    path.write_text("".join(text[i] for i in keep))
    assert verify(path)[0] == f"{path}:{problem}"


def test_swapped_lines_report_each_broken_link(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    text = lines(path)
    path.write_text(text[0] + text[2] + text[1])
    assert verify(path) == [
        f"{path}:2: prev does not match line 1 (a line was removed or reordered)",
        f"{path}:3: prev does not match line 2 (a line was removed or reordered)",
    ]


def test_unparsable_lines_are_reported(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    text = lines(path)
    path.write_text(text[0] + "not json\n" + "[1, 2]\n" + '{"time": "x"}\n' + "\n" + text[1] + text[2])
    assert verify(path) == [
        f"{path}:2: unparsable: invalid JSON at column 1 (truncated or edited?)",
        f"{path}:3: unparsable: not a JSON object (edited?)",
        f"{path}:4: not an audit record: no 'prev' or 'hash' (edited?)",
        f"{path}:5: empty line",
    ]


def test_a_new_log_continues_the_chain(tmp_path):
    path = tmp_path / "deep" / "er" / "audit.jsonl"  # parent directories are created
    first = write_three(path)
    second = AuditLog(path)
    assert second.last_hash == first.last_hash
    second.record("token", "Reload", "graphs", "ok")
    records = [json.loads(line) for line in lines(path)]
    assert len(records) == 4 and records[3]["prev"] == records[2]["hash"]
    assert verify(path) == []


def test_a_torn_last_line_stays_its_own_line_and_the_chain_goes_on(tmp_path):
    """A crash mid-write leaves half a line: the next record starts on a new line and links to
    the last whole record, so verify reports just the torn line."""
    path = tmp_path / "audit.jsonl"
    write_three(path)
    with path.open("a") as out:
        out.write('{"time": "2026-01-01T00:00:00.000Z", "princ')
    log = AuditLog(path)
    log.record("token", "Pause", "orders", "ok")
    assert verify(path) == [f"{path}:4: unparsable: invalid JSON at column 38 (truncated or edited?)"]


def test_the_tail_is_found_in_a_file_larger_than_one_read(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for n in range(200):
        log.record("token", "Apply", f"g{n}.yaml", "applied", "x" * (n * 7))  # lines of every length
    with path.open("a") as out:
        out.write('{"torn": "' + "y" * 100_000)  # longer than a read from the end
    assert path.stat().st_size > 3 * 64 * 1024
    again = AuditLog(path)
    assert again.last_hash == log.last_hash
    again.record("token", "Remove", "g0", "removed")
    problems = verify(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:201: unparsable")


def test_an_empty_file_is_an_intact_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    assert AuditLog(path).last_hash == GENESIS and path.read_bytes() == b""
    assert verify(path) == []


def test_every_record_is_fsynced(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log.record("token", "Pause", "orders", "ok")
    log.record("token", "Resume", "orders", "ok")
    assert len(synced) == 2


def test_an_audit_log_that_cannot_be_opened_stops_the_start(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(AuditError) as caught:
        AuditLog(tmp_path / "file" / "audit.jsonl")
    assert isinstance(caught.value, ControlSecurityError)  # engine serve reports it as one line, exit 2
    assert str(caught.value).startswith(f"HEADRACE_AUDIT_LOG: cannot open {tmp_path / 'file' / 'audit.jsonl'}: ")


def test_verify_a_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        verify(tmp_path / "nope.jsonl")


# --- engine audit verify ---------------------------------------------------------------------

def test_cli_intact(cli, tmp_path):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    assert cli("audit", "verify", str(path)) == (0, f"{path}: 3 records, chain intact\n", "")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli("audit", "verify", str(empty)) == (0, f"{empty}: 0 records, chain intact\n", "")


def test_cli_broken(cli, tmp_path):
    path = tmp_path / "audit.jsonl"
    write_three(path)
    text = lines(path)
    path.write_text(text[0].replace('"ok"', '"failed"') + text[2])
    assert cli("audit", "verify", str(path)) == (1, (
        f"{path}:1: hash does not match the line's contents (edited?)\n"
        f"{path}:2: prev does not match line 1 (a line was removed or reordered)\n"
        f"{path}: 2 records, chain broken (2 problems)\n"), "")


def test_cli_missing_or_unreadable_file(cli, tmp_path):
    assert cli("audit", "verify", str(tmp_path / "nope.jsonl")) == (
        2, "", f"engine: error: no such file: {tmp_path / 'nope.jsonl'}\n")
    code, out, err = cli("audit", "verify", str(tmp_path))
    assert (code, out) == (2, "") and err.startswith(f"engine: error: cannot read {tmp_path}: ")


def test_cli_needs_an_action(cli):
    code, _, err = cli("audit")
    assert code == 2 and "the following arguments are required: ACTION" in err
