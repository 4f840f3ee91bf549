"""HTTP helpers for the process tests: a client call that never raises, and a server for
`http.post` to send to that can hold its requests unanswered (a stuck collector)."""

import contextlib
import http.client
import json
import socket
import threading
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: object, timeout: float = 10.0) -> tuple[int, dict[str, object]]:
    """POST `body` as JSON: (status, the JSON answer); (0, {}) when nothing listens yet."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("POST", parts.path or "/", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read()
    except (ConnectionError, http.client.RemoteDisconnected):
        return 0, {}
    finally:
        connection.close()
    return response.status, json.loads(text) if text else {}


def error_of(answer: tuple[int, dict[str, object]]) -> tuple[int, object]:
    return answer[0], answer[1].get("error")


class HoldServer:
    """Records the events of every POST it receives (a JSON array or NDJSON body). While
    `holding`, a request stays unanswered until `release_one()` answers the oldest held one
    (200); `answer_all()` stops holding. Use as a context manager."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.bodies: list[list[dict[str, object]]] = []  # every request's events, in arrival order
        self.waiting: list[threading.Event] = []  # held requests, oldest first
        self.holding = True
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def requests(self) -> int:
        with self.lock:
            return len(self.bodies)

    def events(self, since: int = 0) -> list[dict[str, object]]:
        """The events of the requests received from the `since`-th on."""
        with self.lock:
            return [event for body in self.bodies[since:] for event in body]

    def release_one(self) -> None:
        with self.lock:
            self.waiting.pop(0).set()

    def answer_all(self) -> None:
        with self.lock:
            self.holding = False
            for released in self.waiting:
                released.set()
            self.waiting.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.closed = True
        self.answer_all()
        self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                connection, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError), connection.makefile("rb") as reader:
            while reader.readline():  # the request line; keep-alive: one request after another
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                text = reader.read(length).decode()
                parsed = json.loads(text) if text.lstrip().startswith("[") else \
                    [json.loads(line) for line in text.splitlines() if line.strip()]
                released = threading.Event()
                with self.lock:
                    self.bodies.append(parsed if isinstance(parsed, list) else [parsed])
                    if self.holding:
                        self.waiting.append(released)
                    else:
                        released.set()
                released.wait()
                if self.closed:
                    return
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
