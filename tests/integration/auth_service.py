"""A small token-protected HTTP service for the auth tests, run as a ``faultlab.Command``::

    python -m tests.integration.auth_service --host 127.0.0.1 --port 8080

- ``GET /health``: ``{"status": "ok"}``;
- ``POST /token``: a new opaque bearer token, ``{"access_token": ..., "token_type": "Bearer"}``
  (every token it issued stays valid: only the proxy's ``auth_error`` revokes them);
- ``GET /items/<id>``: ``{"id": id}`` with a token it issued, else 401 and a challenge.

Stdlib ``http.server`` with HTTP/1.1 keep-alive and TCP_NODELAY (no Nagle delay on small
responses), one thread per connection.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_issued: set[str] = set()
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _reply(self, status: int, body: dict[str, Any], *extra: tuple[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"status": "ok"})
            return
        if not self.path.startswith("/items/"):
            self._reply(404, {"error": "not found"})
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        with _lock:
            valid = scheme == "Bearer" and token in _issued
        if not valid:
            challenge = ("WWW-Authenticate", 'Bearer realm="items", error="invalid_token"')
            self._reply(401, {"error": "invalid_token"}, challenge)
            return
        self._reply(200, {"id": self.path.removeprefix("/items/")})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != "/token":
            self._reply(404, {"error": "not found"})
            return
        token = secrets.token_urlsafe(16)
        with _lock:
            _issued.add(token)
        self._reply(200, {"access_token": token, "token_type": "Bearer"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
