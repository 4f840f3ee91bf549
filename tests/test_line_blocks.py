"""Reading lines in blocks: every line comes out once, in order, with the bytes it spans;
a line over `max_line_bytes` is one record, never held whole, and reading goes on."""

import io
import json
import random
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.io.files.line_blocks import OVERSIZE_HEAD_BYTES, LineBlocks, LineGroup, OversizeLine


class Trickle(io.RawIOBase):
    """A stream whose reads return pieces of random sizes, as a pipe does."""

    def __init__(self, data: bytes, rnd: random.Random) -> None:
        super().__init__()
        self.data = data
        self.at = 0
        self.rnd = rnd

    def readable(self) -> bool:
        return True

    def read1(self, limit: int = -1) -> bytes:
        size = min(limit, self.rnd.choice([1, 2, 7, 64, 1000, 1 << 20]))
        piece = self.data[self.at:self.at + size]
        self.at += len(piece)
        return piece


def split(data: bytes, limit: int, seed: int) -> list[object]:
    blocks = LineBlocks(Trickle(data, random.Random(seed)), limit)  # type: ignore[arg-type]
    out: list[object] = []
    consumed = 0
    for group in blocks.groups():
        if isinstance(group, OversizeLine):
            out.append(("oversize", group.head))
            consumed += group.consumed
        else:
            assert isinstance(group, LineGroup)
            out.extend(group.lines)
            consumed += group.size
    assert consumed == len(data)  # every byte is accounted for, so a resumed read starts right
    return out


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       final_newline=st.booleans(), limit=st.integers(min_value=1, max_value=50), seed=st.integers(0, 1000))
def test_lines_come_out_once_in_order_and_long_ones_as_their_head(lines, final_newline, limit, seed):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    expected: list[object] = []
    for number, line in enumerate(data.split(b"\n")):
        is_last = number == data.count(b"\n")
        if is_last and not line:
            continue  # the newline ended the file: no empty line after it
        expected.append(("oversize", line[:min(limit, OVERSIZE_HEAD_BYTES)]) if len(line) > limit else line)
    assert split(data, limit, seed) == expected


def test_a_line_longer_than_the_limit_is_skipped_without_holding_it(tmp_path: Path):
    limit = 4096
    huge = b"x" * (3 << 20)  # three blocks' worth
    blocks = LineBlocks(io.BytesIO(b'{"a":1}\n' + huge + b'\n{"a":2}\n'), limit)
    groups = list(blocks.groups())
    oversize = [g for g in groups if isinstance(g, OversizeLine)]
    assert len(oversize) == 1 and oversize[0].head == b"x" * OVERSIZE_HEAD_BYTES
    assert oversize[0].consumed == len(huge) + 1
    assert [line for g in groups if isinstance(g, LineGroup) for line in g.lines] == [b'{"a":1}', b'{"a":2}']
    assert len(blocks.partial) <= limit  # what was kept back of the long line


def write_graph(tmp_path: Path, text: str) -> str:
    path = tmp_path / "g.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_file_read_counts_a_too_long_line_as_one_error_and_reads_on(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    long_line = '{"text": "' + "é" * 5000 + '"}'
    (tmp_path / "in.jsonl").write_text('{"n": 1}\n' + long_line + '\n{"n": 2}\n', encoding="utf-8")
    (tmp_path / "in.csv").write_text("n,word\n1,one\n2," + "w" * 300 + "\n3,three\n")
    graph = write_graph(tmp_path, """
        version: 2
        nodes:
          j: {type: file.read, on_error: dead_letter, with: {path: in.jsonl, max_line_bytes: 1000}}
          c: {type: file.read, on_error: dead_letter, with: {path: in.csv, format: csv, max_line_bytes: 100}}
          wj: {type: file.write, from: j, with: {path: j.jsonl}}
          bj: {type: file.write, from: j.errors, with: {path: bj.jsonl}}
          wc: {type: file.write, from: c, with: {path: c.jsonl}}
          bc: {type: file.write, from: c.errors, with: {path: bc.jsonl}}
        """)
    code, _, err = cli("run", graph, "--stats-file", "stats.json")
    assert (code, err) == (0, "")
    read = lambda name: [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]  # noqa: E731
    assert read("j.jsonl") == [{"n": 1}, {"n": 2}]
    [dead] = read("bj.jsonl")
    assert dead["error"] == "line 2: longer than max_line_bytes (1000 bytes)"
    # Its first 1,000 bytes: the limit, as it is under 1,024.
    assert dead["event"]["line"] == '{"text": "' + "é" * 495
    assert read("c.jsonl") == [{"n": "1", "word": "one"}, {"n": "3", "word": "three"}]
    assert [d["error"] for d in read("bc.jsonl")] == ["line 3: longer than max_line_bytes (100 bytes)"]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["nodes"]["j"]["errors"] == 1 and stats["nodes"]["c"]["errors"] == 1
