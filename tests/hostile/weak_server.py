"""A deliberately weak HTTP server the hostile suite must catch.

``python -m tests.hostile.weak_server --port N [--conn-buffer-kib K]``: a thread per
connection without bound (each with a K KiB buffer of its own, as a server that
preallocates one per connection has), no read timeout, and no body limit (the whole
``Content-Length`` body, or whatever arrives before EOF, is read into memory).
``GET /health`` answers 200; anything else 200 with the body's size.
"""

from __future__ import annotations

import argparse
import socket
import threading


def _serve(conn: socket.socket, buffer_kib: int) -> None:
    scratch = bytearray(b"\x01" * (buffer_kib * 1024))  # touched: resident, not just reserved
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:  # no header timeout, no header limit
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        chunks, size = [rest], len(rest)
        while size < length:  # no body limit: whatever the client says
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        reply = b'{"size": %d, "scratch": %d}' % (len(body), len(scratch))
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply)
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conn-buffer-kib", type=int, default=0)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port), backlog=1024)
    while True:
        conn, _ = listener.accept()
        args_ = (conn, args.conn_buffer_kib)
        threading.Thread(target=_serve, args=args_, daemon=True).start()


if __name__ == "__main__":
    main()
