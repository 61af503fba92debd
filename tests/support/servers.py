"""Servers on loopback for the integration tests and bench/: processes, databases, S3, MLflow.

Every process is started in a session of its own and carries ``AIRE_TEST_STACK=<token>``,
a token of its own, in its environment (its children inherit it); ``Process.stop`` ends its
process group, then any process that still carries the token (a child that left the
group), each by its id. ``Databases`` drops every
database it created, with FORCE, whatever still holds a connection.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("AIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               watch: list[Process] | None = None, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail early if a watched process died."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for process in watch or []:
            if not process.alive:
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}) while waiting for "
                                   f"{what}:\n{process.tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in watch or [])
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False


class Process:
    """One server process with its output in ``<log_dir>/<name>.log``.

    ``restart=True`` does what the compose file's ``restart: always`` does: when the
    process exits without ``stop``, a watcher starts it again (same command, environment
    and log) after ``RESTART_DELAY``, and records the exit in ``restarts``. A process that
    exits ``MAX_RESTARTS`` times is left dead (a crash loop is a failure, not a fault to
    ride out), and ``alive`` says so.
    """

    RESTART_DELAY = 1.0
    MAX_RESTARTS = 10

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, token: str,
                 restart: bool = False) -> None:
        # A token of its own: the sweep in stop() must reach this process's descendants only.
        self.name, self.token = name, f"{token}-{secrets.token_hex(4)}"
        self.argv, self.env, self.supervised = argv, {**env, "AIRE_TEST_STACK": self.token}, restart
        self.log_path = log_dir / f"{name}.log"
        self.restarts: list[tuple[float, int]] = []  # (monotonic time of the exit, its status)
        self._lock = threading.Lock()
        self._stopping = False
        self._gave_up = False
        self._may_restart = threading.Event()  # cleared: a host that stays down until released
        self._may_restart.set()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.popen = self._spawn()
        if restart:
            threading.Thread(target=self._supervise, name=f"supervise-{name}", daemon=True).start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def _supervise(self) -> None:
        while True:
            status = self.popen.wait()
            with self._lock:
                if self._stopping:
                    return
                self.restarts.append((time.monotonic(), status))
                if len(self.restarts) >= self.MAX_RESTARTS:
                    self._gave_up = True
                    return
            time.sleep(self.RESTART_DELAY)
            self._may_restart.wait()
            with self._lock:
                if self._stopping:
                    return
                self._sweep()  # a child that outlived its parent would hold the port
                with self.log_path.open("ab") as log:
                    log.write(f"\n--- supervisor: exited {status}, restart {len(self.restarts)}\n".encode())
                self.popen = self._spawn()

    def hold_restarts(self) -> None:
        """The next exit is not restarted until ``release_restarts``: a host that is down for a
        while (its machine rebooting), not a process its supervisor restarts at once."""
        self._may_restart.clear()

    def release_restarts(self) -> None:
        self._may_restart.set()

    @property
    def alive(self) -> bool:
        """Running, or (when supervised) between an exit and its restart."""
        if self.supervised:
            with self._lock:
                return not self._stopping and not self._gave_up
        return self.popen.poll() is None

    @property
    def running(self) -> bool:
        """The current process has not exited (a supervised one may be about to restart)."""
        return self.popen.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def crash(self) -> int:
        """SIGKILL the process and its group, as a crash or an OOM kill would; a supervised
        process is then restarted. Returns how many exits have been recorded before this one."""
        with self._lock:
            before = len(self.restarts)
            _signal_group(self.popen.pid, signal.SIGKILL)
            self._sweep()
        return before

    def wait_restarted(self, after: int, ready: Callable[[], bool], timeout: float = 180) -> None:
        """Until the supervisor has restarted the process past ``after`` exits and ``ready`` holds."""
        wait_until(lambda: len(self.restarts) > after and self.running and ready(), timeout,
                   f"{self.name} restarted and ready", [self], 0.5)

    def stop(self, grace: float = 20.0) -> None:
        with self._lock:
            self._stopping = True
        self._may_restart.set()  # a held supervisor wakes, sees the stop and ends
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._sweep()

    def _sweep(self) -> None:
        for pid in _pids_with_token(self.token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pids_with_token(token: str) -> list[int]:
    marker = f"AIRE_TEST_STACK={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def new_token() -> str:
    return secrets.token_hex(6)


class Databases:
    """Databases created on the test server, all dropped by ``drop_all``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}_{secrets.token_hex(4)}"
        self.names: list[str] = []

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)

    def create(self, suffix: str, template: str | None = None) -> str:
        name = f"{self.prefix}_{suffix}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template))
        with self._admin() as admin:
            admin.execute(statement)
        self.names.append(name)
        return name

    @staticmethod
    def url(name: str, driver: str = "postgresql+psycopg") -> str:
        from sqlalchemy.engine import make_url

        return make_url(ADMIN_URL).set(drivername=driver, database=name).render_as_string(hide_password=False)

    def terminate_connections(self, name: str) -> int:
        """Drop every client connection to ``name`` (what a PostgreSQL failover does to clients)."""
        with self._admin() as admin:
            rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
        return len(rows)

    def drop_all(self) -> None:
        with self._admin() as admin:
            for name in reversed(self.names):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.names.clear()


class S3Server:
    """moto's S3 server as its own process (state lives as long as it does)."""

    def __init__(self, log_dir: Path, token: str) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = Process("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                               dict(os.environ), log_dir, token)
        wait_until(lambda: http_ok(f"{self.endpoint}/moto-api/"), 60, "moto's S3 server", [self.process])

    def client(self, endpoint: str | None = None) -> Any:
        from aire.data.storage import S3Settings, s3_client

        return s3_client(S3Settings(endpoint_url=endpoint or self.endpoint, access_key_id="aire-test",
                                    secret_access_key="not-a-secret", region="us-east-1"))

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def threaded_s3(*buckets: str) -> Iterator[Any]:
    """moto's S3 server in a thread on loopback, with these buckets; yields its S3Settings."""
    from moto.server import ThreadedMotoServer

    from aire.data.storage import S3Settings, s3_client

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = S3Settings(endpoint_url=f"http://{host}:{port}", access_key_id="test",
                          secret_access_key="test-secret", region="us-east-1")
    for bucket in buckets:
        s3_client(settings).create_bucket(Bucket=bucket)
    try:
        yield settings
    finally:
        server.stop()


class FlakyProxy:
    """A TCP forwarder on loopback that can go down (connection refused) and come back.

    Down closes the listening socket and every open connection, as a crashed or
    partitioned endpoint would; up listens again on the same port. ``cut_after(n)`` goes
    down by itself once n more bytes have gone upstream (an endpoint lost mid-upload).
    While down, a socket bound to the port but not listening holds it: clients are refused
    as before, and the kernel cannot hand the port out as some connection's local port,
    which would make ``up`` fail with "address already in use" after a long outage.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._budget: int | None = None
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._placeholder: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self.up()

    def _bound(self) -> socket.socket:
        bound = socket.socket()
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.bind(("127.0.0.1", self.port))
        return bound

    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            listener = self._bound()
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut_after(self, upstream_bytes: int) -> None:
        with self._lock:
            self._budget = upstream_bytes

    def down(self) -> None:
        with self._lock:
            self._budget = None
            listener, self._listener = self._listener, None
            conns, self._open = self._open, set()
            if listener is not None:
                # shutdown first: it wakes the thread blocked in accept(), which would
                # otherwise keep the socket listening (and the port taken) past close().
                try:
                    listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                listener.close()
                self._placeholder = self._bound()
        for conn in conns:
            conn.close()

    def close(self) -> None:
        """Down for good, the port released."""
        self.down()
        with self._lock:
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, counted), daemon=True).start()

    def _spend(self, size: int) -> bool:
        """Count bytes sent upstream; False once the cut_after budget is spent."""
        with self._lock:
            if self._budget is None:
                return True
            self._budget -= size
            return self._budget > 0

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted and not self._spend(len(data)):
                    self.down()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()


class RedisServer:
    """``redis-server`` of its own on a free port, restarted like the compose file's ``redis``
    (``restart: always``); nothing persisted, so a restart loses every queued message."""

    def __init__(self, log_dir: Path, token: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = Process("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                                         "--save", "", "--appendonly", "no"],
                               dict(os.environ), log_dir, token, restart=True)
        wait_until(self.ready, 30, "redis-server", [self.process])

    def ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=2).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        self.process.stop()


class MlflowServer:
    """``mlflow server`` on PostgreSQL with S3 artifacts and basic auth, started through
    docker/mlflow-server.sh exactly as the compose file's ``mlflow`` service is, and
    restarted when it exits (``restart: always``). It reaches S3 through ``s3_proxy``, so
    a test can take the whole S3 endpoint away, the server's artifact path included."""

    USER = "aire-admin"

    def __init__(self, dbs: Databases, s3: S3Server, log_dir: Path, token: str, bucket: str) -> None:
        self.password = f"mlflow-{secrets.token_hex(8)}"
        self.s3_proxy = FlakyProxy(s3.port)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        tracking, auth = dbs.create("mlflow"), dbs.create("mlflow_auth")
        self.db_names = [tracking, auth]
        env = {
            **os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_BACKEND_STORE_URI": dbs.url(tracking), "MLFLOW_AUTH_DATABASE_URI": dbs.url(auth),
            "MLFLOW_AUTH_CONFIG_PATH": str(log_dir / "mlflow-auth.ini"),
            "MLFLOW_AUTH_ADMIN_USERNAME": self.USER, "MLFLOW_AUTH_ADMIN_PASSWORD": self.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            # MLflow's job runner (GenAI scorers) would start seven more processes; AIRE needs none.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_proxy.endpoint, "AWS_ACCESS_KEY_ID": "aire-test",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret", "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.process = Process("mlflow", [
            "bash", str(ROOT / "docker" / "mlflow-server.sh"), "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--artifacts-destination", f"s3://{bucket}", "--serve-artifacts",
            "--app-name", "basic-auth"], env, log_dir, token, restart=True)
        wait_until(self.ready, 180, "the MLflow server", [self.process], 1.0)

    def ready(self) -> bool:
        return http_ok(f"{self.uri}/health")

    def client_env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_TRACKING_USERNAME": self.USER,
                "MLFLOW_TRACKING_PASSWORD": self.password}

    def stop(self) -> None:
        self.process.stop()
        self.s3_proxy.close()
