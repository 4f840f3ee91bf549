"""A source that cannot be read the usual way still reads, and one that breaks fails the
graph with a one-line error instead of ending quietly with data lost."""

import io
import json
import sys

from adapters.io.files import line_reader


def write_graph(tmp_path, source: str) -> str:
    path = tmp_path / "g.yaml"
    path.write_text(
        "version: 2\nname: g\nnodes:\n"
        f"  src: {source}\n"
        "  out: {type: file.write, from: src, with: {path: out.jsonl, format: jsonl}}\n")
    return str(path)


def test_stdin_without_a_file_descriptor_is_read(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"a": 1}\n{"a": 2}\n')))
    graph = write_graph(tmp_path, "{type: stdin}")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("run", graph)
    assert code == 0, err
    assert [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()] == [{"a": 1}, {"a": 2}]


def test_an_unexpected_error_in_a_source_fails_the_graph_with_its_name(cli, tmp_path, monkeypatch):
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n')

    def broken(*args: object) -> bool:
        raise RuntimeError("disk controller on fire")
    monkeypatch.setattr(line_reader, "decode_jsonl_lines", broken)
    graph = write_graph(tmp_path, "{type: file.read, with: {path: in.jsonl, format: jsonl}}")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("run", graph)
    assert code == 1
    assert "node 'src': unexpected RuntimeError: disk controller on fire" in err
    assert "Traceback" not in err
