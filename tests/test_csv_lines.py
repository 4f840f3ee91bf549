"""CSV read a group of lines at a time gives what one csv.reader over the whole file gave,
wherever the groups end (inside a quoted field spanning lines included), and a resumed
read never starts inside an open row."""

import csv
import io
import json
import random
import textwrap
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.io.files.csv_lines import CsvRows
from adapters.io.files.line_reader import LineReader
from adapters.io.formats import BadRecord


def whole_file_reference(text: str) -> list[object]:
    """The reader Headrace used before: one csv.reader over every line of the file."""
    numbers = [0]

    def lines() -> Iterator[str]:
        parts = text.split("\n")  # lines end at "\n" only, as the file is read
        ended = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        for number, line in enumerate(ended, start=1):
            numbers[0] = number
            yield line
    reader = csv.reader(lines())
    header = None
    out: list[object] = []
    while True:
        start = numbers[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            return out
        except csv.Error as exc:
            out.append(("bad", start, f"invalid CSV ({exc})"))
            continue
        if not row or row == [""]:
            continue
        if header is None:
            header = [name.strip() for name in row]
        elif len(row) != len(header):
            out.append(("bad", start, f"expected {len(header)} fields as in the header, got {len(row)}"))
        else:
            out.append(dict(zip(header, row)))


def read_all(path, start: tuple[int, int] = (0, 0)) -> list:
    with open(path, "rb") as stream:
        return list(LineReader(stream, "csv", str(path), start=start).chunks())


def seen(records: list[object]) -> list[object]:
    return [("bad", r.line_number, r.problem) if isinstance(r, BadRecord) else r for r in records]


cells = st.text(alphabet='ab ,"\n\r', max_size=6)
files = st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(rows=files, cuts=st.lists(st.integers(1, 5), max_size=30), newline_at_end=st.booleans(),
       blank=st.integers(0, 12), crlf=st.booleans())
def test_groups_anywhere_give_the_whole_file_reading(rows, cuts, newline_at_end, blank, crlf):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    lines = buffer.getvalue().split("\n")[:-1]
    lines.insert(min(blank, len(lines)), "")  # a blank line somewhere
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    decoder = CsvRows()
    out: list[object] = []
    at = 0
    for size in cuts + [len(lines)]:
        group = lines[at:at + size]
        if not group:
            break
        last = at + size >= len(lines)
        decoder.decode("\n".join(group), [len(x) + 1 for x in group], at + 1, out, last and not newline_at_end,
                       complete=not last or newline_at_end)
        at += len(group)
    decoder.decode("", [], at + 1, out, True)
    assert seen(out) == whole_file_reference(text)


def test_a_resumed_read_starts_at_the_open_rows_first_line(tmp_path):
    # A quoted field spanning two lines across the end of a group (GROUP_LINES lines).
    from adapters.io.files.line_blocks import GROUP_LINES
    body = [f"{i},plain" for i in range(GROUP_LINES - 2)] + ['x,"two', 'lines"', "y,after"]
    path = tmp_path / "in.csv"
    path.write_text("n,word\n" + "\n".join(body) + "\n")
    chunks = read_all(path)
    records = [r for c in chunks for r in c.records]
    assert records[-2:] == [{"n": "x", "word": "two\nlines"}, {"n": "y", "word": "after"}]
    first = chunks[0]
    # The first chunk holds lines 1..GROUP_LINES, of which the last opened the quoted row:
    # its offset and line count stop before that line.
    assert first.lines == GROUP_LINES - 1
    assert path.read_bytes()[:first.done_bytes].decode().endswith(f"{GROUP_LINES - 3},plain\n")
    again = [r for c in read_all(path, (first.done_bytes, first.lines)) for r in c.records]
    assert again == records[len(first.records):]


def test_file_read_csv_end_to_end_with_quotes_blank_lines_and_a_bom(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_bytes('\ufeffid, name\n1,"a, b"\n\n2,"multi\nline"\n3\n4,é\n'.encode())
    graph = tmp_path / "g.yaml"
    graph.write_text(textwrap.dedent("""
        version: 2
        nodes:
          c: {type: file.read, on_error: dead_letter, with: {path: in.csv, format: csv}}
          w: {type: file.write, from: c, with: {path: out.jsonl}}
          b: {type: file.write, from: c.errors, with: {path: bad.jsonl}}
        """))
    code, _, err = cli("run", str(graph))
    assert (code, err) == (0, "")
    read = lambda name: [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]  # noqa: E731
    assert read("out.jsonl") == [{"id": "1", "name": "a, b"}, {"id": "2", "name": "multi\nline"},
                                 {"id": "4", "name": "é"}]
    assert [(b["error"], b["event"]) for b in read("bad.jsonl")] == [
        ("line 6: expected 2 fields as in the header, got 1", {"line": "3"})]


def test_lines_format_keeps_text_and_drops_carriage_returns():
    data = b"alpha\r\nbeta\n\ngamma"
    reader = LineReader(io.BytesIO(data), "lines")  # type: ignore[arg-type]
    records = [r for c in reader.chunks() for r in c.records]
    assert records == [{"line": "alpha"}, {"line": "beta"}, {"line": ""}, {"line": "gamma"}]


def test_random_groups_of_the_whole_reader(tmp_path):
    rnd = random.Random(5)
    rows = [[rnd.choice(["a", "b,c", 'q"q', "x\ny", ""]) for _ in range(3)] for _ in range(3000)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([["f1", "f2", "f3"], *rows])
    path = tmp_path / "in.csv"
    path.write_text(buffer.getvalue())
    assert seen([r for c in read_all(path) for r in c.records]) == whole_file_reference(buffer.getvalue())


def test_crlf_lines_without_quotes_lose_their_carriage_returns_in_every_group():
    text = "id,name\r\n1,a\r\n\r\n2,b\r\n3,c\r\n"
    lines = text.split("\n")[:-1]
    decoder = CsvRows()
    out: list[object] = []
    for number, line in enumerate(lines, start=1):  # a group per line: the header's group is not the others'
        decoder.decode(line, [len(line) + 1], number, out, False)
    decoder.decode("", [], len(lines) + 1, out, True)
    assert out == [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}, {"id": "3", "name": "c"}]
    assert seen(out) == whole_file_reference(text)


def test_header_names_are_keys_as_written_never_code():
    names = ["a'b", 'c"d', "}{", "\\", "__import__('os').system('false')", "a'b"]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([names, ["1", "2", "3", "4", "5", "6"]])
    header, row = buffer.getvalue().split("\n")[:2]
    decoder = CsvRows()
    out: list[object] = []
    decoder.decode(header, [len(header) + 1], 1, out, False)
    decoder.decode(row, [len(row) + 1], 2, out, True)
    # A repeated name keeps its first place and its last value, as dict(zip(...)) does.
    assert out == [dict(zip(names, "123456"))]
    assert list(out[0]) == ["a'b", 'c"d', "}{", "\\", "__import__('os').system('false')"]


def test_an_oversize_line_inside_an_open_row_makes_the_row_bad_and_the_offset_passes_it(tmp_path):
    # A quoted field opens on line 3 and its next line is longer than max_line_bytes: the
    # open row is the bad record (numbered by its first line), and no offset points into it.
    path = tmp_path / "in.csv"
    text = 'n,word\n1,ok\n2,"opens\n' + "x" * 300 + '"\n3,after\n'
    path.write_text(text)
    with open(path, "rb") as stream:
        chunks = list(LineReader(stream, "csv", str(path), max_line_bytes=64).chunks())
    records = [r for c in chunks for r in c.records]
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert [b.line_number for b in bad] == [3] and "max_line_bytes" in bad[0].problem
    assert [r for r in records if not isinstance(r, BadRecord)] == [{"n": "1", "word": "ok"},
                                                                     {"n": "3", "word": "after"}]
    raw = text.encode()
    for chunk in chunks:  # every offset is at a line start, never past an unread row
        assert chunk.done_bytes == 0 or raw[chunk.done_bytes - 1:chunk.done_bytes] == b"\n"
    oversize_end = raw.index(b'"\n3,after') + 2
    assert all(c.done_bytes <= 15 or c.done_bytes >= oversize_end for c in chunks)


def test_following_a_truncated_csv_forgets_the_open_row_and_reads_the_new_header(tmp_path, monkeypatch):
    import threading

    from adapters.io.files import line_reader
    monkeypatch.setattr(line_reader, "FOLLOW_POLL_S", 0.01)
    path = tmp_path / "in.csv"
    path.write_text('a,b\n1,"open\n')  # a row still open when the writer truncates the file
    seen_records: list[object] = []
    with open(path, "rb") as stream:
        reader = LineReader(stream, "csv", str(path), follow=True)
        done = threading.Event()

        def consume() -> None:
            try:
                for chunk in reader.chunks():
                    assert chunk.done_bytes >= 0 and chunk.lines >= 0
                    seen_records.extend(chunk.records)
                    if any(isinstance(r, dict) and r.get("y") == "2" for r in seen_records):
                        reader.stopped = True
            except line_reader.Stopped:
                done.set()
        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        import time
        time.sleep(0.1)
        path.write_text("x,y\n1,2\n")  # truncated and rewritten with a new header
        assert done.wait(10)
    assert seen_records == [{"x": "1", "y": "2"}]
