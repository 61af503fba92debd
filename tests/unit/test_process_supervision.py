"""The stack harness restarts what the compose file restarts (``restart: always``):
``tests.support.servers.Process(restart=True)``, on real child processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.servers import Process, new_token, wait_until


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Process, "RESTART_DELAY", 0.1)
    monkeypatch.setattr(Process, "MAX_RESTARTS", 3)


def test_a_crashed_process_is_started_again_and_a_stopped_one_is_not(tmp_path: Path) -> None:
    process = Process("sleeper", ["sleep", "600"], dict(os.environ), tmp_path, new_token(), restart=True)
    try:
        first = process.popen.pid
        exits = process.crash()
        process.wait_restarted(exits, lambda: True, timeout=30)
        assert process.popen.pid != first and process.alive
        assert [status for _, status in process.restarts] == [-9]
        second = process.popen
    finally:
        process.stop()
    assert second.poll() is not None and not process.alive
    assert len(process.restarts) == 1  # stop() is not a crash


def test_a_crash_loop_is_left_dead_and_says_so(tmp_path: Path) -> None:
    process = Process("failing", ["false"], dict(os.environ), tmp_path, new_token(), restart=True)
    try:
        wait_until(lambda: not process.alive, 30, "the supervisor to give up")
        assert [status for _, status in process.restarts] == [1, 1, 1]
        assert process.tail().count("--- supervisor: exited 1") == 2
    finally:
        process.stop()


def test_an_unsupervised_process_stays_dead(tmp_path: Path) -> None:
    process = Process("once", ["sleep", "600"], dict(os.environ), tmp_path, new_token())
    try:
        process.crash()
        wait_until(lambda: not process.alive, 30, "the process to be seen dead")
        assert process.restarts == []
    finally:
        process.stop()


def test_a_proxy_that_is_down_refuses_and_keeps_its_port() -> None:
    """Down for as long as a test likes: the port is still the proxy's when it comes back."""
    import socket
    import threading

    from tests.support.servers import FlakyProxy

    upstream = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [upstream.accept()[0].sendall(b"hello") for _ in range(2)], daemon=True).start()
    proxy = FlakyProxy(upstream.getsockname()[1])
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
            assert conn.recv(5) == b"hello"
        proxy.down()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        with socket.socket() as squatter, pytest.raises(OSError, match="in use"):
            squatter.bind(("127.0.0.1", proxy.port))  # what an outgoing connection's local port would need
        proxy.up()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
            assert conn.recv(5) == b"hello"
    finally:
        proxy.close()
        upstream.close()
