"""`engine top` against a real `engine serve` process: `--once --json` shows the numbers
`engine ctl status` shows, and the live view runs in a real pseudo-terminal (stdlib `pty`):
it draws, follows a resize, takes its keys and gives the terminal back."""

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.ctl_serve_support import Engine, free_port
from tests.process_support import wait_for

TOKEN = "top-token"
BATCH = """version: 1
name: batch
nodes:
  numbers: {type: generate, with: {count: 50, fields: {n: i}}}
  doubled: {type: map, from: numbers, with: {set: {m: n * 2}}}
  sink: {type: "null", from: doubled}
"""
TICKS = """version: 1
name: ticks
nodes:
  ticks: {type: generate, with: {rate: 200, fields: {n: i}}}
  sink: {type: "null", from: ticks}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder = tmp_path_factory.mktemp("top")
    (folder / "graphs").mkdir()
    (folder / "graphs" / "batch.yaml").write_text(BATCH)
    (folder / "graphs" / "ticks.yaml").write_text(TICKS)
    served = Engine(folder, {"CONTROL_TOKEN": TOKEN})
    try:
        served.wait_serving()
        yield served
    finally:
        assert served.stop() == 0, served.log.read_text()


def top(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """`engine top ARGS`, the address and the token from the environment, stdout a pipe."""
    return subprocess.run([sys.executable, "-m", "adapters.cli.main", "top", *args], cwd=engine.folder,
                          env=engine.env, capture_output=True, text=True, timeout=30)


def test_once_json_shows_the_numbers_of_ctl_status(engine):
    token = {"HEADRACE_CONTROL_TOKEN": TOKEN}
    wait_for(lambda: json.loads(engine.ctl("status", "batch", "--json", env=token).stdout)["summary"]["state"]
             == "finished", timeout=30)
    status = json.loads(engine.ctl("status", "batch", "--json", env=token).stdout)
    shown = top(engine, "--once", "--json", "--interval", "0.3")
    assert shown.returncode == 0, shown.stderr
    graphs = {g["name"]: g for g in json.loads(shown.stdout)["graphs"]}
    assert sorted(graphs) == ["batch", "ticks"]

    batch = graphs["batch"]
    summary = status["summary"]
    assert (batch["file"], batch["state"], batch["plan_hash"]) == (summary["file"], "finished", summary["plan_hash"])
    assert [(n["name"], n["type"], n["state"], n["in"], n["out"], n["errors"], n["busy_seconds"])
            for n in batch["nodes"]] == sorted(
        (n["name"], n["type"], n["state"], n["events_in"], n["events_out"], n["errors"], n["busy_seconds"])
        for n in status["nodes"])
    assert [(n["in"], n["out"]) for n in batch["nodes"]] == [(50, 50), (0, 50), (50, 0)]  # doubled, numbers, sink
    fields = ("id", "policy", "depth", "capacity", "enqueued", "dropped", "coalesced", "high_water", "blocked_seconds")
    assert [tuple(e[f] for f in fields) for e in batch["edges"]] == [tuple(e[f] for f in fields)
                                                                      for e in status["edges"]]
    assert all(e["fill"] == 0.0 for e in batch["edges"])
    # Rates over the two polls: a finished graph's are 0, a running source's are real.
    assert {(n["in_per_s"], n["out_per_s"], n["errors_per_s"]) for n in batch["nodes"]} == {(0.0, 0.0, 0.0)}
    ticks = {n["name"]: n for n in graphs["ticks"]["nodes"]}
    assert ticks["ticks"]["out_per_s"] > 0 and ticks["sink"]["in_per_s"] > 0
    assert ticks["ticks"]["in_per_s"] == 0.0 and ticks["ticks"]["errors_per_s"] == 0.0

    by_rate = json.loads(top(engine, "--once", "--json", "--interval", "0.2", "--sort", "rate").stdout)
    assert [n["name"] for g in by_rate["graphs"] for n in g["nodes"]][-2:] == ["sink", "ticks"]  # ties: by name
    assert [g["name"] for g in by_rate["graphs"]] == ["batch", "ticks"]

    text = top(engine, "--once", "--graph", "batch.yaml", "--interval", "0.1", "--sort", "out")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("graph 'batch' (batch.yaml)  finished  plan sha256:")
    assert re.search(r"^doubled\s+map\s+finished\s+0\.0\s+0\.0\s+0\.0\s+50\s+50\s+0\s", text.stdout, re.M)
    assert re.search(r"^numbers->doubled\s+block\s+\[\.+\]\s+0/\d+\s+50\s+0\s", text.stdout, re.M)

    missing = top(engine, "--once", "--graph", "nope", "--interval", "0.1")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith("engine: error: no graph 'nope'") and len(missing.stderr.splitlines()) == 1


def test_a_wrong_token_and_an_unreachable_engine_are_one_line(engine):
    refused = top(engine, "--once", "--token", "wrong")
    assert refused.returncode == 1
    assert refused.stderr.startswith("engine: error: unauthenticated") and len(refused.stderr.splitlines()) == 1

    nowhere = subprocess.run([sys.executable, "-m", "adapters.cli.main", "top", "--address",
                              f"127.0.0.1:{free_port()}", "--timeout", "2"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                             capture_output=True, text=True, timeout=30)
    assert (nowhere.returncode, nowhere.stdout) == (2, "")
    assert nowhere.stderr.startswith("engine: error: cannot reach the control plane at 127.0.0.1:")
    assert len(nowhere.stderr.splitlines()) == 1


class Terminal:
    """`engine top ARGS` in a pseudo-terminal of `rows` x `columns` (its controlling terminal,
    so Ctrl-C and a resize reach it as they do from a real one), its screen read as it comes.
    The test keeps the terminal's own end open, to see the modes the command leaves it in."""

    def __init__(self, env: dict[str, str], cwd: Path, args: list[str], rows: int, columns: int) -> None:
        environment = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        environment["TERM"] = "xterm-256color"
        self.fd, self.terminal = os.openpty()
        self._size(self.terminal, rows, columns)
        self.pid = os.fork()
        if self.pid == 0:  # the child: a session of its own on the terminal, then engine top
            try:
                os.setsid()
                fcntl.ioctl(self.terminal, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(self.terminal, fd)
                os.chdir(cwd)
                os.execve(sys.executable, [sys.executable, "-m", "adapters.cli.main", "top", *args], environment)
            finally:
                os._exit(127)
        self.seen = ""
        self.status: int | None = None

    @staticmethod
    def _size(fd: int, rows: int, columns: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def read(self) -> str:
        """What the screen got since the last look (escape sequences removed)."""
        while select.select([self.fd], [], [], 0.02)[0]:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child has gone
                break
            if not data:
                break
            self.seen += ANSI.sub("", data.decode(errors="replace"))
        return self.seen

    def expect(self, pattern: str, timeout: float = 15.0) -> str:
        """Waits until `pattern` (a regular expression) is in what came since the last expect;
        returns all that came."""
        wait_for(lambda: re.search(pattern, self.read()), timeout, seen=lambda: self.seen[-3000:])
        text, self.seen = self.seen, ""
        return text

    def resize(self, rows: int, columns: int) -> None:
        self._size(self.fd, rows, columns)  # the kernel sends SIGWINCH to the foreground job ...
        os.kill(self.pid, signal.SIGWINCH)  # ... and so do we, as a window system may

    def exit_code(self, timeout: float = 5.0) -> int | None:
        def ended() -> bool:
            self.read()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            return self.status is not None

        wait_for(ended, timeout, seen=lambda: self.seen[-2000:])
        return self.status

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
        os.close(self.terminal)


def test_the_live_view_draws_resizes_sorts_and_quits_in_a_terminal(engine):
    # A long interval: a redraw seen within it comes from the resize or a key, not a poll.
    screen = Terminal(engine.env, engine.folder, ["--interval", "30"], rows=40, columns=120)
    try:
        frame = screen.expect(r"ticks->sink\s+block\s+[█░]{12}\s+\d+/\d+")  # the last row of the first frame
        assert re.search(r"engine top  127\.0\.0\.1:\d+  .*  sort: name \(s\)  graph: all \(g\)  q: quit", frame)
        assert re.search(r"graph 'batch' \(batch\.yaml\)  finished  plan sha256:[0-9a-f]{12}\s", frame)
        assert re.search(r"numbers\s+generate\s+finished\s+-\s+-\s+-\s+0\s+50\s+0\s", frame)  # no rates yet

        screen.resize(24, 60)  # narrow: the tables keep their main columns
        narrow = screen.expect(r"numbers\s+-\s+-\s+0\s+50\s+0\s")
        assert "generate" not in narrow and "BUSY S" not in narrow

        os.write(screen.fd, b"s")
        screen.expect(r"sort: in")
        os.write(screen.fd, b"g")
        screen.expect(r"graph: batch")
        os.write(screen.fd, b"q")
        assert screen.exit_code() == 0
        # The terminal is as it was: line by line, echoed (cbreak mode undone).
        attributes = termios.tcgetattr(screen.terminal)
        assert attributes[3] & termios.ICANON and attributes[3] & termios.ECHO
    finally:
        screen.close()


def test_ctrl_c_ends_the_live_view_with_exit_0(engine):
    screen = Terminal(engine.env, engine.folder, ["--graph", "ticks", "--interval", "0.2"], rows=30, columns=100)
    try:
        screen.expect(r"ticks\s+generate\s+running\s+0\.0\s+\d+\.\d\s")  # a second poll: rates
        os.write(screen.fd, b"\x03")
        assert screen.exit_code() == 0
        assert "Traceback" not in screen.seen
        assert termios.tcgetattr(screen.terminal)[3] & termios.ECHO
    finally:
        screen.close()
