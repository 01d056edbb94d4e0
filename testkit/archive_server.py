"""An HTTP server on loopback that serves archives the way real servers fail: connections cut at
chosen byte offsets (a clean close or a reset), a response that stalls, a flipped byte, Range
requests honoured or ignored, error statuses and a web page where an archive should be."""
from __future__ import annotations

import dataclasses
import http.server
import socket
import struct
import threading
import time
from pathlib import Path


@dataclasses.dataclass
class Behaviour:
    ranges: bool = True  # honour Range requests (206); else answer 200 with the whole body
    cuts: list[int] = dataclasses.field(default_factory=list)  # byte offsets: each cuts one response once
    stall_at: int | None = None  # a byte offset where one response stops sending (until the client gives up)
    stall_seconds: float = 5.0
    corrupt_at: int | None = None  # a byte offset served with its bits flipped, every time
    status: dict[str, int] = dataclasses.field(default_factory=dict)  # path -> error status
    pages: set[str] = dataclasses.field(default_factory=set)  # paths answered with an HTML page
    busy: int = 0  # requests answered 503 (overloaded) before any is served
    chunk: int = 256 * 1024


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a connection this server cut on purpose


class ArchiveServer:
    """``with ArchiveServer({"name.tar.gz": path}) as server: server.url("name.tar.gz")``.
    ``requests`` lists (path, Range header) as they came; ``behaviour`` may change between runs."""

    def __init__(self, files: dict[str, Path], behaviour: Behaviour | None = None):
        self.files = {name: Path(path) for name, path in files.items()}
        self.behaviour = behaviour or Behaviour()
        self.requests: list[tuple[str, str | None]] = []
        self.cuts_done = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._serve(self)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, handler) -> None:
        b = self.behaviour
        name = handler.path.lstrip("/")
        self.requests.append((name, handler.headers.get("Range")))
        if name in b.status:
            handler.send_error(b.status[name])
            return
        if b.busy:
            b.busy -= 1
            handler.send_error(503)
            return
        if name in b.pages or name not in self.files:
            code, body = (200, b"<html><body>Mirror maintenance</body></html>") if name in b.pages else (404, b"")
            if code == 404:
                handler.send_error(404)
                return
            handler.send_response(code)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        size = self.files[name].stat().st_size
        start = 0
        asked = handler.headers.get("Range")
        if asked and b.ranges:
            start = int(asked.removeprefix("bytes=").split("-")[0])
            if start >= size:
                handler.send_error(416)
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Type", "application/gzip")
        handler.send_header("Content-Length", str(size - start))
        handler.send_header("Connection", "close")
        handler.end_headers()
        with open(self.files[name], "rb") as source:
            source.seek(start)
            self._send(handler, source, start, size)

    def _send(self, handler, source, start: int, size: int) -> None:
        b = self.behaviour
        position = start
        while position < size:
            end = min(size, position + b.chunk)
            cut = next((c for c in sorted(b.cuts) if position <= c < end), None)
            stall = b.stall_at if b.stall_at is not None and position <= b.stall_at < end else None
            stop = min(x for x in (end, cut, stall) if x is not None)
            piece = bytearray(source.read(stop - position))
            if b.corrupt_at is not None and position <= b.corrupt_at < stop:
                piece[b.corrupt_at - position] ^= 0xFF
            try:
                handler.wfile.write(piece)
                handler.wfile.flush()
            except OSError:
                return  # the client went away
            position = stop
            if cut is not None and position == cut:
                b.cuts.remove(cut)
                self.cuts_done += 1
                if self.cuts_done % 2:  # a reset; else a clean close before Content-Length
                    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.close_connection = True
                handler.connection.close()
                return
            if stall is not None and position == stall:
                b.stall_at = None
                time.sleep(b.stall_seconds)
                handler.close_connection = True
                handler.connection.close()
                return
