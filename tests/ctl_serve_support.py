"""A real `engine serve` process and `engine ctl` commands against it, for the end-to-end
tests of the control plane (tests/test_ctl_serve.py, tests/test_control_tls.py)."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.process_support import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Engine:
    """`engine serve graphs` in `folder`, on a free loopback port, with `settings` as
    HEADRACE_* variables (e.g. {"CONTROL_TOKEN": ...}); stderr is kept for a failure."""

    def __init__(self, folder: Path, settings: dict[str, str]) -> None:
        self.folder = folder
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
        self.env.update(PYTHONPATH=str(ROOT), HEADRACE_CONTROL_ADDRESS=self.address, HEADRACE_WATCH_DEBOUNCE_MS="50",
                        **{f"HEADRACE_{k}": v for k, v in settings.items()})
        self.log = folder / "engine.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", "graphs"],
                                            cwd=folder, env=self.env, stdout=subprocess.DEVNULL, stderr=log,
                                            text=True)

    def ctl(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`engine ctl ARGS` (the control address from the environment, no token unless given)."""
        environment = {k: v for k, v in self.env.items() if k != "HEADRACE_CONTROL_TOKEN"}
        environment.update(env or {})
        return subprocess.run([sys.executable, "-m", "adapters.cli.main", "ctl", *args], cwd=self.folder,
                              env=environment, capture_output=True, text=True, timeout=60)

    def ctl_process(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`engine ctl ARGS` left running (a stream), its output piped."""
        environment = {k: v for k, v in self.env.items() if k != "HEADRACE_CONTROL_TOKEN"}
        environment.update(env or {})
        return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "ctl", *args], cwd=self.folder,
                                env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_serving(self, *health_args: str) -> None:
        """Until `engine ctl health` (with these options) says SERVING."""
        def serving() -> bool:
            assert self.process.poll() is None, f"engine serve exited: {self.log.read_text()}"
            return self.ctl("health", *health_args).stdout.strip() == "SERVING"

        wait_for(serving, timeout=60, seen=lambda: self.log.read_text()[-2000:])

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
