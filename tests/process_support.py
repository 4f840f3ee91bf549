"""Reading a child process's output as it comes, so a test waits for what it needs to see
instead of sleeping a fixed time (a loaded CI machine starts Python slowly)."""

import threading
import time
from typing import IO, Callable


class Lines:
    """One output stream of a child, read on a thread into `lines`."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self.thread.start()

    def wait(self, condition: Callable[[list[str]], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.lines):
            assert time.monotonic() < deadline, f"timed out; output so far: {self.lines[-20:]}"
            time.sleep(0.05)

    def text(self, timeout: float = 30.0) -> str:
        """Everything, once the child has closed the stream (it exited)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream is still open"
        return "".join(self.lines)
