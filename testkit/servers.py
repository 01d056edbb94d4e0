"""``ds2stream serve`` in a process of its own, and the HTTP requests and /stream sessions the
tests and benches send it."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from .machines import free_port


def served_stats() -> dict:
    """RSS (MB) and CPU seconds (user + system) of the server ``served`` started in this process
    (its one child), read from /proc: what the benches watch while they load it."""
    import os

    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if entry.name.isdigit() and int(fields[1]) == os.getpid():
                rss = next(int(line.split()[1]) for line in (entry / "status").read_text().splitlines()
                           if line.startswith("VmRSS:"))
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                return {"rss_mb": rss / 1024, "cpu_seconds": cpu}
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    raise RuntimeError("the server process was not found")


@contextlib.contextmanager
def served(model: Path, *args, timeout: float = 120.0):
    """``ds2stream serve --model MODEL ARGS`` in its own process on a free loopback port, as a user
    starts it; yields its base URL once it answers /health, and stops it after."""
    import subprocess
    import time
    import urllib.request

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ds2stream.cli", "serve", "--model", str(model),
                                "--port", str(port), *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ds2stream serve exited ({process.returncode}): {process.stdout.read()}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ds2stream serve did not answer within {timeout:.0f} s") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def post_audio(url: str, body: bytes, content_type: str, timeout: float = 120.0) -> tuple[int, dict]:
    """POST to a server's /transcribe: (HTTP status, its JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + "/transcribe", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def multipart_body(field: str, data: bytes, filename: str = "audio.flac") -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload of ``data`` as ``field``."""
    boundary = "ds2stream-upload-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def play(url: str, samples: np.ndarray, chunk: int = 4000, start: dict | None = None, pace: float = 0.0):
    """One /stream session: the start message, the samples in chunks, the end; every message the
    server sent, and its close code."""
    import asyncio
    import json

    import aiohttp

    messages = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url.replace("http", "ws") + "/stream") as ws:
            await ws.send_json(start or {"sample_rate": 16000, "format": "s16le"})
            for at in range(0, len(samples), chunk):
                await ws.send_bytes(samples[at: at + chunk].astype("<i2").tobytes())
                await asyncio.sleep(pace)
            await ws.send_json({"end": True})
            async for message in ws:
                messages.append(json.loads(message.data))
            return messages, ws.close_code


async def refused(url: str, *sends, wait: float = 5.0) -> tuple[int, str]:
    """Open /stream, send these (str: text, bytes: binary, dict: JSON), and return how it closed."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url.replace("http", "ws") + "/stream") as ws:
            for item in sends:
                if ws.closed:
                    break
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                elif isinstance(item, str):
                    await ws.send_str(item)
                else:
                    await ws.send_json(item)
            reason = ""
            while True:
                message = await ws.receive(timeout=wait)
                if message.type == aiohttp.WSMsgType.CLOSE:
                    reason = message.extra or ""
                    break
                if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
            return ws.close_code, reason
