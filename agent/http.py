"""The HTTP endpoint: /metrics, /healthz, /readyz, the status page and /api/devices.

It runs in its own thread (a ThreadingHTTPServer), so a slow or huge scrape never stalls the
asyncio poll loop; everything it serves is read from snapshots the loop swaps atomically.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.exposition import negotiate

log = logging.getLogger("rackpulse.http")


@dataclass
class HttpHooks:
    """What the server asks the daemon for; each callable must be thread-safe."""

    render_metrics: Callable[[bool], bytes]
    ready: Callable[[], bool]
    status_html: Callable[[], str]
    devices_json: Callable[[], dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)

    def _send(self, code: int, body: bytes, ctype: str, compress: bool = False) -> None:
        if compress and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body, compresslevel=1)
            self.send_response(code)
            self.send_header("Content-Encoding", "gzip")
        else:
            self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        hooks = self.server.hooks
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                om, ctype = negotiate(self.headers.get("Accept"))
                self._send(200, hooks.render_metrics(om), ctype, compress=True)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ok = hooks.ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n", "text/plain; charset=utf-8")
            elif path == "/":
                self._send(200, hooks.status_html().encode(), "text/html; charset=utf-8", compress=True)
            elif path == "/api/devices":
                body = json.dumps(hooks.devices_json(), indent=1).encode()
                self._send(200, body, "application/json", compress=True)
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("http_error path=%s", path)
            self._send(500, b"internal error\n", "text/plain; charset=utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper hanging up mid-response is routine; anything else is logged once, without stderr noise."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        log.error("http_error client=%s error=%r", client_address[0] if client_address else "?", exc)

    def __init__(self, addr: tuple[str, int], hooks: HttpHooks) -> None:
        self.hooks = hooks
        super().__init__(addr, _Handler)


class HttpServer:
    """Serves the endpoints from a background thread until ``stop()``."""

    def __init__(self, host: str, port: int, hooks: HttpHooks) -> None:
        self._server = _Server((host, port), hooks)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
