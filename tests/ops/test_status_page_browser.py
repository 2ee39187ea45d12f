"""Render the status page in headless Chromium from a real HTTP server and check the screenshot.

Set RACKPULSE_UPDATE_SCREENSHOT=1 to also refresh docs/status-page.png (the README's picture).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.status_page import render_html, render_json

from .opsutil import free_port, require_binary
from .status_fixture import snapshot

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1280, 800
RED = (0xCF, 0x22, 0x2E)  # the "down" banner and pill colour from the page's CSS
GREEN = (0x1A, 0x7F, 0x37)


class _Handler(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.path == "/":
            body, ctype = render_html(snapshot()).encode(), "text/html; charset=utf-8"
        elif self.path == "/api/devices":
            body, ctype = json.dumps(render_json(snapshot())).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.paths = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        row_start = y * (stride + 1)
        ftype, row = raw[row_start], bytearray(raw[row_start + 1 : row_start + 1 + stride])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                row[i] = (row[i] + a) & 0xFF
            elif ftype == 2:
                row[i] = (row[i] + b) & 0xFF
            elif ftype == 3:
                row[i] = (row[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels.extend(tuple(row[x : x + 3]) for x in range(0, stride, channels))  # type: ignore[misc]
        prev = row
    return width, height, pixels


def test_screenshot_in_headless_chromium(server: str, tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    shot = tmp_path / "status-page.png"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}", server,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists(), f"chromium wrote no screenshot:\n{proc.stderr[-2000:]}"
    assert "/" in _Handler.paths  # it really fetched the page from our server
    data = shot.read_bytes()
    assert len(data) > 20_000, f"screenshot is suspiciously small ({len(data)} bytes)"

    width, height, pixels = _decode_png(data)
    assert (width, height) == (WIDTH, HEIGHT)
    colours = Counter(pixels)
    assert colours[(255, 255, 255)] > 0.4 * len(pixels), "expected a mostly white page"
    assert colours[RED] > 50_000, "the red 'down' banner is missing"  # ~1230x150 px of banner
    assert colours[GREEN] > 500, "the green 'up' pills are missing"
    assert len(colours) > 200, "expected anti-aliased text, got a flat image"

    if os.environ.get("RACKPULSE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "status-page.png")
