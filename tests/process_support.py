"""Reading a child process's output as it comes, so a test waits for what it needs to see
instead of sleeping a fixed time (a loaded CI machine starts Python slowly)."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


def wait_for(condition: Callable[[], object], timeout: float = 30.0,
             seen: Callable[[], object] = lambda: "") -> None:
    """Poll until `condition()` holds; fail after `timeout` seconds, showing `seen()` then."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out; seen: {seen()}"
        time.sleep(0.02)


class Lines:
    """One output stream of a child, read on a thread into `lines`."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self.thread.start()

    def wait(self, condition: Callable[[list[str]], bool], timeout: float = 30.0) -> None:
        wait_for(lambda: condition(self.lines), timeout, seen=lambda: self.lines[-20:])

    def text(self, timeout: float = 30.0) -> str:
        """Everything, once the child has closed the stream (it exited)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream is still open"
        return "".join(self.lines)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick, so xdist workers do not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine(*args: str, env: dict[str, str], cwd: Path) -> "subprocess.Popen[str]":
    """`engine ARGS` as a process in `cwd`, with `env` over this environment; output piped."""
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", *args], cwd=cwd, text=True,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
