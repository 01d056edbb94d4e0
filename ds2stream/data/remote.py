"""Archives read over HTTP(S) as a stream: ``ds2stream shard URL`` and ``ds2stream download``.

:class:`HttpStream` is a file object over a URL that survives what networks do: a dropped
connection or a stalled server is retried with backoff and resumed with a ``Range`` request from
the byte where it stopped, so that the reader above (``tarfile`` and its decompressor) never sees
the break; a server that ignores ``Range`` is read again from byte 0, the bytes already delivered
skipped. It checks the archive's MD5 or SHA-256 as the bytes pass, each byte once. Errors that
no retry mends (404, 403, a web page instead of an archive, a host that does not resolve, TLS) are
one :class:`DataError` line naming the URL.

LibriSpeech's archives are known by name: their URLs on openslr.org and the MD5 sums published
beside them (https://www.openslr.org/resources/12/md5sum.txt).
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import io
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import DataError
from ..files import replace_durably

LIBRISPEECH_MIRROR = "https://www.openslr.org/resources/12/"
#: MD5 of each LibriSpeech archive, as openslr.org publishes them in resources/12/md5sum.txt.
LIBRISPEECH_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}
CHUNK = 1 << 20
#: Statuses worth a retry: the server is overloaded or restarting. Any other error status is final.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
#: Patience with a URL: seconds without a byte before the connection counts as stalled, and
#: retries in a row without progress before it is given up.
TIMEOUT_SECONDS = 30.0
RETRIES = 8


def is_url(text) -> bool:
    return isinstance(text, str) and text.lower().startswith(("http://", "https://"))


def url_name(url: str) -> str:
    """The file name a URL ends with (``train-clean-100.tar.gz``)."""
    return Path(urllib.parse.urlsplit(url).path).name


def known_md5(url: str) -> str | None:
    """LibriSpeech's published MD5 when the URL names one of its archives, else None."""
    match = re.fullmatch(r"(.+)\.tar\.gz", url_name(url))
    return LIBRISPEECH_MD5.get(match.group(1)) if match else None


class Checksums:
    """The digests asked for (``{"md5": hex, "sha256": hex}``), computed over the bytes as they pass."""

    def __init__(self, expected: dict[str, str]):
        self.expected = {name: value.lower() for name, value in expected.items() if value}
        self._hashes = {name: hashlib.new(name) for name in self.expected}

    def update(self, data) -> None:
        for h in self._hashes.values():
            h.update(data)

    def verify(self, what: str) -> None:
        for name, value in self.expected.items():
            got = self._hashes[name].hexdigest()
            if got != value:
                raise DataError(f"{what}: {name} is {got}, expected {value}: the archive is corrupt or not "
                                "the one named; nothing was marked complete")


class HttpStream(io.RawIOBase):
    """A readable file object over ``url`` that resumes across dropped connections (see the module).

    :param timeout: seconds without a byte before the connection counts as stalled.
    :param retries: attempts in a row without progress before giving up.
    :param log: one line for what the user should know (a retry, a restart from byte 0).
    :param on_bytes: called as ``on_bytes(position, total)`` as bytes arrive (total may be None).
    """

    def __init__(self, url: str, *, checksums: Checksums | None = None, timeout: float = TIMEOUT_SECONDS,
                 retries: int = RETRIES, start: int = 0, log: Callable[[str], None] = lambda line: None,
                 on_bytes: Callable[[int, int | None], None] | None = None, backoff: float = 0.5):
        super().__init__()
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.checksums = checksums or Checksums({})
        self.position = start  # bytes delivered to the reader (and hashed)
        self.total: int | None = None
        self.log, self.on_bytes = log, on_bytes
        self._response = None
        self._answered = False  # a server that never answered (refused) is not worth retrying
        try:
            self._connect()
        except (OSError, http.client.HTTPException) as err:  # a timeout or a 503 at the start
            self._retry(err, 1)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        failures = 0
        while True:
            try:
                count = self._response.readinto(buffer)
                if count == 0 and self.total is not None and self.position < self.total:
                    raise ConnectionError(f"the connection closed before byte {self.total}")
                break
            except (OSError, http.client.HTTPException) as err:
                failures += 1
                self._retry(err, failures)
        view = memoryview(buffer)[:count]
        self.checksums.update(view)
        self.position += count
        if self.on_bytes is not None:
            self.on_bytes(self.position, self.total)
        return count

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()

    def drain(self) -> None:
        """Read to the end (what a reader left after its last member), so that every byte is checked."""
        while self.read(CHUNK):
            pass

    # -- connections
    def _retry(self, err: Exception, failures: int) -> None:
        """Reconnect after ``err`` (the ``failures``-th in a row without progress), or give up."""
        while True:
            if failures > self.retries:
                raise DataError(f"{self.url}: {_reason(err)} at byte {self.position}; gave up after {self.retries} "
                                "retries (re-run the same command to resume)") from None
            delay = min(30.0, self.backoff * 2 ** (failures - 1))
            self.log(f"{self.url}: {_reason(err)} at byte {self.position}; retry {failures} of {self.retries} in "
                     f"{delay:g} s")
            time.sleep(delay)
            try:
                self._connect()
                return
            except (OSError, http.client.HTTPException) as again:  # a DataError is final: it passes
                err, failures = again, failures + 1

    def _connect(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        headers = {"User-Agent": "ds2stream", "Accept-Encoding": "identity"}
        if self.position:
            headers["Range"] = f"bytes={self.position}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if err.code in RETRYABLE_STATUS:
                raise ConnectionError(f"HTTP {err.code} {err.reason}") from None
            if err.code == 416 and self.position:  # bytes=N- past the end: everything has arrived
                self.total, self._response = self.position, io.BytesIO()
                return
            raise DataError(f"{self.url}: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, socket.gaierror):
                raise DataError(f"{self.url}: host {urllib.parse.urlsplit(self.url).hostname!r} not found "
                                f"({reason.strerror})") from None
            if isinstance(reason, ssl.SSLError):
                raise DataError(f"{self.url}: TLS failed ({reason})") from None
            if not self._answered and isinstance(reason, ConnectionRefusedError):
                raise DataError(f"{self.url}: connection refused") from None
            raise ConnectionError(_reason(reason)) from None
        if not self._answered:
            self._answered = True
            kind = response.headers.get_content_type()
            if kind.startswith("text/"):
                response.close()
                raise DataError(f"{self.url}: the server sent a {kind} page, not an archive")
        if response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != self.position:
                response.close()
                raise ConnectionError(f"the server answered bytes {response.headers.get('Content-Range')!r} "
                                      f"to a request for bytes {self.position}-")
            self.total = None if match.group(2) == "*" else int(match.group(2))
        else:
            length = response.headers.get("Content-Length")
            self.total = int(length) if length and length.isdigit() else None
            if self.position:
                self.log(f"{self.url}: the server ignores Range requests; reading again from byte 0, "
                         f"skipping the {self.position} bytes already read")
                _skip(response, self.position)
        self._response = response


def _skip(response, count: int) -> None:
    left = count
    while left:
        data = response.read(min(CHUNK, left))
        if not data:
            raise ConnectionError(f"the server closed the connection while skipping to byte {count}")
        left -= len(data)


def _reason(err) -> str:
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "no data (timed out)"
    if isinstance(err, http.client.IncompleteRead):
        return "connection cut"
    text = str(err) or type(err).__name__
    return text[:200]


def checksums_for(url: str, md5: str | None = None, sha256: str | None = None) -> Checksums:
    """The digests to check for ``url``: those given, or LibriSpeech's published MD5 by its name."""
    if md5 is None and sha256 is None:
        md5 = known_md5(url)
    return Checksums({"md5": md5, "sha256": sha256})


@dataclasses.dataclass(frozen=True)
class Fetch:
    """How URLs are read: the checksums asked for (else LibriSpeech's by name), patience, and
    where the lines and byte counts go."""
    md5: str | None = None
    sha256: str | None = None
    timeout: float = TIMEOUT_SECONDS
    retries: int = RETRIES
    log: Callable[[str], None] = lambda line: None
    on_bytes: Callable[[str, int, int | None], None] | None = None  # (url, position, total)

    def open(self, url: str) -> HttpStream:
        on_bytes = None if self.on_bytes is None else (lambda position, total: self.on_bytes(url, position, total))
        return HttpStream(url, checksums=checksums_for(url, self.md5, self.sha256), timeout=self.timeout,
                          retries=self.retries, log=self.log, on_bytes=on_bytes)


def librispeech_url(subset: str, mirror: str = LIBRISPEECH_MIRROR) -> str:
    if subset not in LIBRISPEECH_MD5:
        raise DataError(f"{subset!r} is not a LibriSpeech subset; known: {', '.join(LIBRISPEECH_MD5)}")
    return mirror.rstrip("/") + f"/{subset}.tar.gz"


def download(url: str, out_dir: Path, checksums: Checksums, *, timeout: float = TIMEOUT_SECONDS,
             retries: int = RETRIES, log: Callable[[str], None] = print, on_bytes=None) -> Path:
    """``url`` into ``out_dir`` under its own name, through ``<name>.part``: a re-run (or a retry)
    goes on from the end of the part; the file takes its name only once complete and checked."""
    out_dir = Path(out_dir)
    target = out_dir / url_name(url)
    if target.exists():
        log(f"{target}: already downloaded")
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if start and checksums.expected:
        with open(part, "rb") as held:  # what the part holds goes into the digest first
            for block in iter(lambda: held.read(CHUNK), b""):
                checksums.update(block)
    stream = HttpStream(url, checksums=checksums, timeout=timeout, retries=retries, start=start, log=log,
                        on_bytes=on_bytes)
    if start:
        log(f"{part}: resuming at byte {start}")
    with stream, open(part, "ab") as sink:
        for block in iter(lambda: stream.read(CHUNK), b""):
            sink.write(block)
    try:
        checksums.verify(url)
    except DataError:
        os.replace(part, part.with_name(part.name + ".corrupt"))
        raise
    replace_durably(part, target)
    return target
