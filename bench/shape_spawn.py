"""A small process that starts `bench/shapes.py`'s children and reports their peak RSS.

Why not start them from shapes.py itself: on Linux a child's `ru_maxrss` is at least the
RSS of the process that spawned it (the parent's memory mapping is what `exec` replaces, and
its high-water mark is carried into the child's), so a child spawned by a parent holding
100 MB of HTTP bodies reports 100 MB whatever it used. This process imports next to
nothing and holds nothing, so the floor it leaves under each child is about 9 MiB, below
any Python child's own peak.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.

    {"op": "start", "command": [...], "cwd": "...", "env": {...}, "stderr": "PATH"} -> {"pid": N} or {"error": "..."}
    {"op": "exited", "pid": N}                  -> {"exited": true|false}
    {"op": "signal", "pid": N, "signal": 2}     -> {}
    {"op": "wait", "pid": N, "timeout": 60.0}   -> {"status": 0, "timed_out": false, "peak_kib": N, "seconds": 1.2}

`status` is the exit code (negative: killed by that signal); `seconds` runs from the spawn
to the moment the exit was seen (polled every millisecond).
"""

import json
import os
import signal
import sys
import time

POLL_S = 0.001
started: dict[int, float] = {}
finished: dict[int, dict[str, object]] = {}  # pid -> the answer to "wait", once reaped


def start(command: list[str], cwd: str, env: dict[str, str], stderr: str) -> int:
    os.chdir(cwd)  # posix_spawn has no working-directory action before Python 3.13
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    pid = os.posix_spawn(command[0], command, env, file_actions=actions)
    started[pid] = time.perf_counter()
    return pid


def reap(pid: int, block: bool) -> bool:
    if pid in finished:
        return True
    got, status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
    if not got:
        return False
    finished[pid] = {"status": os.waitstatus_to_exitcode(status), "timed_out": False,
                     "peak_kib": usage.ru_maxrss, "seconds": time.perf_counter() - started[pid]}
    return True


def wait(pid: int, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not reap(pid, block=False):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            reap(pid, block=True)
            finished[pid]["timed_out"] = True
            break
        time.sleep(POLL_S)
    return finished.pop(pid)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "start":
            try:
                answer: dict[str, object] = {"pid": start(request["command"], request["cwd"], request["env"],
                                                          request["stderr"])}
            except OSError as error:  # a missing executable, say: the caller reports it
                answer = {"error": f"cannot start {request['command'][0]}: {error}"}
        elif op == "exited":
            answer = {"exited": reap(request["pid"], block=False)}
        elif op == "signal":
            if request["pid"] not in finished:
                os.kill(request["pid"], request["signal"])
            answer = {}
        else:
            answer = wait(request["pid"], request["timeout"])
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
