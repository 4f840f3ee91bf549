"""Real servers for the connector tests (PostgreSQL, Redis, NATS JetStream, Mosquitto), run by the
test itself on a free 127.0.0.1 port in a temporary directory, logging to a file there; no system
service. Each can be stopped, killed (SIGKILL) and started again in place (same port, same data).
Fixtures `postgres_server`, `redis_server`, `nats_server`, `mqtt_server` (function-scoped, started;
registered in tests/conftest.py); for other settings: `with RedisServer(tmp_path, password="pw")`.
A missing program skips, and fails under CI=true (`require`); .ci/install-servers installs them."""

import asyncio
import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from glob import glob
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest

from tests.conftest import require

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
INSTALL_HINT = "run .ci/install-servers (Debian: apt-get install postgresql redis-server nats-server mosquitto)"
_SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])  # nats-server, mosquitto on Debian
_RUNNING: set["Server"] = set()
T = TypeVar("T")


class ServerError(RuntimeError):
    """A server did not start or stop; the message ends with its log's tail."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick, so xdist workers do not collide)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def find_program(name: str) -> str:
    """The program's path on PATH or in the sbin directories; skips (fails in CI) without it."""
    found = shutil.which(name) or shutil.which(name, path=_SBIN)
    require(found, f"{name} is not installed: {INSTALL_HINT}")
    assert found is not None
    return found


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a fresh event loop in a thread: works from sync code and
    from inside a running loop alike."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class Server:
    """One server process. `start()` returns once a real client has been answered."""

    name = "server"

    def __init__(self, directory: Path, *, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.directory / f"{self.name}.log"
        self.starts = 0
        self.started_in = 0.0  # seconds the last start() took
        self.run_as: dict[str, Any] = {}  # Popen's user, group, extra_groups
        self._process: subprocess.Popen[bytes] | None = None

    # -- to be given by each server ----------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def ping(self) -> bool:
        """One readiness probe with a real client; True, False or raise while not ready."""
        raise NotImplementedError

    def after_ready(self) -> None:
        """Run once the server answers, at every start."""

    # -- life cycle --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self.running:
            return
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- headrace tests: start {self.starts} on {HOST}:{self.port}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C does not reach it half-way; kill() takes its children too.
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             **self.run_as)
        _RUNNING.add(self)
        began = time.monotonic()
        deadline = began + timeout
        last_error: object = None
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                self._forget()
                raise ServerError(self.failure(f"exited with code {code} while starting"))
            try:
                if self.ping():
                    break
            except Exception as exc:  # not ready yet: refused, starting up, loading
                last_error = exc
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(self.failure(f"did not answer within {timeout:.0f} s (last: {last_error!r})"))
            time.sleep(0.02)
        try:
            self.after_ready()
        except Exception as exc:
            self.kill()
            raise ServerError(self.failure(f"answered, but setting it up failed: {exc!r}")) from exc
        self.started_in = time.monotonic() - began

    stop_signal = signal.SIGTERM

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """A graceful stop (the server saves what it keeps); SIGKILL if it has not exited in time."""
        if not self.running:
            self._forget()
            return
        assert self._process is not None
        self._process.send_signal(self.stop_signal)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(self.failure(f"did not stop within {timeout:.0f} s; killed")) from None
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server and its children: a crash, nothing saved on the way out."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(STOP_TIMEOUT)
        self._forget()

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop gracefully and start again: same port, same data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()

    def _forget(self) -> None:
        _RUNNING.discard(self)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- logs --------------------------------------------------------------------------------
    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def failure(self, what: str) -> str:
        return f"{self.name} on {HOST}:{self.port} {what}; {self.log_path} ends:\n{self.log_tail()}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {HOST}:{self.port} {'running' if self.running else 'stopped'}>"


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_RUNNING):
        server.kill()


# -- PostgreSQL ------------------------------------------------------------------------------

def postgres_bin() -> Path:
    """The directory of initdb and postgres: Debian keeps them off PATH, in /usr/lib/postgresql."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    versions = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    require(versions, f"PostgreSQL (initdb) is not installed: {INSTALL_HINT}")
    return Path(versions[-1]).parent


class PostgresServer(Server):
    """A cluster of its own: role `headrace`, password `secret` (scram-sha-256 over TCP), database
    `headrace`. As root it runs as the OS user `postgres` (PostgreSQL refuses root); its data
    directory then lives in a directory of /tmp that user can reach (pytest's are private), removed
    by `close()`. `template`: a stopped cluster's data directory to copy instead of running initdb."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: open connections do not hold it up
    user = "headrace"
    password = "secret"
    database = "headrace"

    def __init__(self, directory: Path, *, port: int | None = None, template: Path | None = None) -> None:
        super().__init__(directory, port=port)
        self.bin = postgres_bin()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                require(False, f"running as root, PostgreSQL needs the OS user postgres: {INSTALL_HINT}")
            self.run_as = {"user": "postgres", "group": "postgres", "extra_groups": []}
        self.home = Path(tempfile.mkdtemp(prefix="headrace-pg-"))  # short: a socket path has <108 bytes
        self.data = self.home / "data"
        self.sockets = self.home / "run"
        self.sockets.mkdir()
        if template is not None:
            shutil.copytree(template, self.data)
        if self.run_as:
            subprocess.run(["chown", "-R", "postgres:", str(self.home)], check=True)
        if template is None:
            try:
                self._initdb()
            except BaseException:
                shutil.rmtree(self.home, ignore_errors=True)
                raise

    def _initdb(self) -> None:
        done = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-locale",
             "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256"],
            capture_output=True, text=True, check=False, **self.run_as)
        if done.returncode:
            raise ServerError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")

    def command(self) -> list[str]:
        return [str(self.bin / "postgres"), "-D", str(self.data), "-c", f"port={self.port}",
                "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.sockets}",
                "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=50"]

    def superuser(self, dbname: str = "postgres") -> Any:
        """A psycopg connection as the superuser `postgres`, over the unix socket (autocommit)."""
        import psycopg
        return psycopg.connect(host=str(self.sockets), port=self.port, user="postgres", dbname=dbname,
                               connect_timeout=2, autocommit=True)

    def ping(self) -> bool:
        with self.superuser():
            return True

    def after_ready(self) -> None:
        with self.superuser() as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)).fetchone() is None:
                conn.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
                conn.execute(f"CREATE DATABASE {self.database} OWNER {self.user}")

    def connect(self) -> Any:
        """A psycopg connection as `headrace` over TCP with the password (autocommit)."""
        import psycopg
        return psycopg.connect(self.dsn, connect_timeout=5, autocommit=True)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{HOST}:{self.port}/{self.database}"

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


# -- Redis -----------------------------------------------------------------------------------

class RedisServer(Server):
    """redis-server with an append-only file fsynced on every write and no RDB snapshots."""

    name = "redis"

    def __init__(self, directory: Path, *, port: int | None = None, password: str | None = None) -> None:
        super().__init__(directory, port=port)
        self.program = find_program("redis-server")
        self.password = password
        self.data = self.directory / "data"
        self.data.mkdir(exist_ok=True)

    def command(self) -> list[str]:
        auth = ["--requirepass", self.password] if self.password else []
        return [self.program, "--port", str(self.port), "--bind", HOST, "--dir", str(self.data),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no", *auth]

    def client(self, **options: Any) -> Any:
        """A redis-py client on database 0 (with the password)."""
        import redis
        return redis.Redis(host=HOST, port=self.port, password=self.password, **options)

    def ping(self) -> bool:
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        # No retries: redis-py 8 would retry a silent port for ~25 s before the exit is noticed.
        with self.client(socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)) as client:
            return bool(client.ping())  # raises BusyLoadingError while it reads the AOF

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


# -- NATS ------------------------------------------------------------------------------------

class NatsServer(Server):
    """nats-server with JetStream on file storage in the directory."""

    name = "nats"

    def __init__(self, directory: Path, *, port: int | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        super().__init__(directory, port=port)
        self.program = find_program("nats-server")
        self.user, self.password = user, password
        self.store = self.directory / "jetstream"

    def command(self) -> list[str]:
        auth = ["--user", self.user, "--pass", self.password or ""] if self.user else []
        return [self.program, "-js", "--store_dir", str(self.store), "-a", HOST, "-p", str(self.port),
                "-n", f"headrace-test-{self.port}", *auth]

    async def connect(self, **options: Any) -> Any:
        """A nats-py connection (with the credentials); close it."""
        import nats
        return await nats.connect(self.url, user=self.user, password=self.password, **options)

    def ping(self) -> bool:
        async def quiet(_error: Exception) -> None:
            pass  # nats-py's default prints each refused attempt's traceback

        async def probe() -> bool:
            # reconnect_time_wait: nats-py waits that long (2 s) after a failed first connect too.
            # max_reconnect_attempts also bounds the first connect: 0 or less would retry forever.
            nc = await self.connect(connect_timeout=1, allow_reconnect=False, max_reconnect_attempts=1,
                                    reconnect_time_wait=0, error_cb=quiet)
            try:
                return bool(await nc.jetstream().account_info())  # JetStream has recovered its streams
            finally:
                await nc.close()
        return run_async(probe)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"


# -- Mosquitto -------------------------------------------------------------------------------

class MosquittoServer(Server):
    """mosquitto with persistence (saved every second and on a graceful stop). `users`: a
    password file (mosquitto_passwd) and no anonymous clients."""

    name = "mosquitto"

    def __init__(self, directory: Path, *, port: int | None = None, users: dict[str, str] | None = None) -> None:
        super().__init__(directory, port=port)
        self.program = find_program("mosquitto")
        self.users = dict(users or {})
        first: tuple[str | None, str | None] = next(iter(self.users.items()), (None, None))
        self.username, self.password = first
        self.data = self.directory / "data"
        self.data.mkdir(exist_ok=True)
        self.config = self.directory / "mosquitto.conf"
        lines = [f"listener {self.port} {HOST}", "persistence true", f"persistence_location {self.data}/",
                 "autosave_interval 1", "log_dest stderr", "log_timestamp_format %H:%M:%S",
                 f"allow_anonymous {'false' if self.users else 'true'}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to the user mosquitto, who cannot write here
        if self.users:
            passwd = self.directory / "passwd"
            passwd.touch(0o600)
            for user, password in self.users.items():
                subprocess.run([find_program("mosquitto_passwd"), "-b", str(passwd), user, password],
                               check=True, capture_output=True)
            lines.append(f"password_file {passwd}")
        self.config.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [self.program, "-c", str(self.config)]

    def client(self, client_id: str = "", *, clean_session: bool = True) -> Any:
        """A paho-mqtt (MQTT 3.1.1) client, not yet connected, with the first user's password."""
        from paho.mqtt.client import Client
        from paho.mqtt.enums import CallbackAPIVersion
        client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
        if self.username:
            client.username_pw_set(self.username, self.password)
        return client

    def ping(self) -> bool:
        answer: list[Any] = []
        client = self.client(f"headrace-ping-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda _c, _u, _flags, code, _props: answer.append(code)
        client.connect(HOST, self.port, keepalive=10)
        try:
            deadline = time.monotonic() + 2
            while not answer and time.monotonic() < deadline:
                client.loop(timeout=0.05)
        finally:
            client.disconnect()
        return bool(answer) and not answer[0].is_failure

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A stopped cluster with the role and database made, once per session (per xdist worker);
    `postgres_server` copies it (~0.2 s) instead of running initdb (~0.8 s) for every test."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres-template"))
    try:
        server.start()
        server.stop()
        yield server.data
    finally:
        server.close()


@pytest.fixture
def postgres_server(tmp_path: Path, postgres_template: Path) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path / "postgres", template=postgres_template) as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def mqtt_server(tmp_path: Path) -> Iterator[MosquittoServer]:
    with MosquittoServer(tmp_path / "mosquitto") as server:
        yield server
