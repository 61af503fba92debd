"""A real HTTP receiver on 127.0.0.1 for notifier tests (not a test module itself).

It records every POST (path, headers, JSON body) and answers from a script of status
codes, then 202 (what PagerDuty's Events API answers) once the script runs out.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class Receiver:
    def __init__(self, script: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self._script: deque[int] = deque(script or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver._script.popleft() if receiver._script else 202
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "json": json.loads(body), "answered": status})
                reply = b'{"status": "success"}' if status < 400 else b'{"status": "boom"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *statuses: int) -> None:
        with self._lock:
            self._script.extend(statuses)

    def bodies(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.requests]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2/enqueue"
