"""``ds2stream serve``: a model behind an HTTP API and a web page (aiohttp: one package gives the
server, the multipart parser and the client the load bench uses; no ASGI server on top).

  ``POST /transcribe``  the audio file as a multipart field ``file`` or as the raw request body ->
                        ``{"text", "words": [{"word", "start", "end"}], "duration"}`` (seconds; each
                        word's times from the CTC alignment of the text, ``align.word_times``)
  ``GET /stream``       a WebSocket for a forward-only model (the ``stream`` preset): a JSON start
                        message ``{"sample_rate": 16000, "format": "s16le" | "f32le"}``, then binary
                        chunks of mono PCM; ``{"partial": text}`` each time the text so far changes;
                        on ``{"end": true}`` the final ``{"text", "words", "duration", "latency"}``
                        and a normal close. Refusals close with a code and a reason (``CLOSE_*``).
                        With ``"endpoint": {rules}`` in the start message (``EndpointRules``' names;
                        ``{}``: the defaults) the stream is cut into segments: each one's
                        ``{"segment": index, "start", "end", "text", "words"}`` as it ends, the
                        partials those of the segment under way, and ``"segments"`` in the final.
  ``GET /``             the page: upload a file or record from the microphone, see the transcript
  ``GET /health``       ``{"status": "ok" | "busy", "streaming": whether the model can stream (the page
                        offers "Live" only then), "queued", "max_queue", "refused", "streams", ...}``

Requests that arrive together are batched: one task takes what is queued (up to ``max_batch``
utterances), pads it to a bucket of frames and a batch of a power of two (so that graph mode
compiles a bounded set of shapes, once each) and runs it in the forward thread, in passes of at
most ``SLICE_FRAMES``, while the server goes on reading uploads; stream ticks go first in that
thread (``forward_thread``). Bad input gets a 4xx with a message and never stops the
server: 400 (a hotword list that cannot be used, or longer than ``max_hotwords``), 413 (upload
larger than ``max_upload_mb``), 415 (not audio), 422 (unreadable audio, longer than
``max_seconds``, shorter than one window). What it cannot serve in time it refuses: past
``max_queue`` utterances waiting for the model, a request gets 503 with ``Retry-After`` (the
seconds the queue ahead of it takes), so a burst costs no memory and no latency without bound.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.audio import AudioError, read_audio
from ..errors import ConfigError, Ds2streamError
from ..pipeline.buckets import round_up_frames
from .align import timed_words
from .endpoint import EndpointRules
from .evaluate import network_log_probs
from .forward_thread import TICK, UPLOAD, ForwardThread
from .hotwords import Hotwords, HotwordsError
from .transcribe import Transcriber

PAGE = Path(__file__).with_name("web") / "index.html"
#: Padded frame counts of a served batch (then multiples of the largest): few shapes to compile.
FRAME_EDGES = (128, 256, 512, 1024, 2048, 4096)
#: The padded frames (rows x frames) of one upload forward pass: a stream tick waiting for the
#: forward thread waits for at most one such pass (``forward_thread``). A batch of 8 uploads of up
#: to 5 s (10-ms frames) is one pass; a longer batch is cut into several. One upload longer than
#: this still goes whole (a bidirectional model needs all its frames), up to max_seconds.
SLICE_FRAMES = 4096
#: Content types taken as a raw audio body, besides audio/*.
RAW_AUDIO_TYPES = ("application/octet-stream",)


@dataclasses.dataclass(frozen=True)
class ServeLimits:
    max_upload_mb: float = 20.0
    # of an upload, and of a stream (it then ends as if the client ended it); of each segment of a
    # stream with endpoints (the longest max_segment), which may go on for as long as it is spoken to
    max_seconds: float = 60.0
    max_batch: int = 8
    max_queue: int = 64  # utterances waiting for a forward pass; past it: 503
    max_streams: int = 8  # WebSocket streams at once; past it: CLOSE_BUSY
    idle_seconds: float = 10.0  # a stream with no message for this long is closed (CLOSE_IDLE)
    max_hotwords: int = 100  # phrases in a request's hotwords (besides the server's own); past it: 400
    max_hotword_chars: int = 50  # characters of one of them, once normalised


#: WebSocket close codes of /stream: the standard ones where one fits (RFC 6455), else 4xxx.
CLOSE_PROTOCOL = 1008  # a message out of order, or not what the protocol says (policy violation)
CLOSE_UNSUPPORTED = 1003  # a sample rate or format the model cannot take, or a model that cannot stream
CLOSE_BUSY = 1013  # more streams than --max-streams ("try again later")
CLOSE_IDLE = 4408  # nothing from the client for idle_seconds
#: Sample formats a stream may send: little-endian 16-bit integers or 32-bit floats.
STREAM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
#: What a start message may hold.
START_KEYS = {"sample_rate", "format", "endpoint", "hotwords"}
#: A stream's audio waiting for a tick past which its handler reads no more until that audio has
#: gone through the model: a client faster than real time (a file) is held back, and a tick carries
#: about this much of it, instead of making one tick as long as its file for every stream. Well
#: above a tick's time, or a real-time client behind slow ticks is held back too (at 0.5 s it was,
#: in the test of ticks made 0.3 s slower).
MAX_QUEUED_SECONDS = 2.0


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def padded_frames(frames: int) -> int:
    """The bucket a batch of at most ``frames`` frames is padded to."""
    for edge in FRAME_EDGES:
        if frames <= edge:
            return edge
    return int(round_up_frames(frames, FRAME_EDGES[-1]))


def padded_rows(utterances: int) -> int:
    """The rows a batch of ``utterances`` is padded to: a power of two."""
    return 1 << (utterances - 1).bit_length()


def forward_slices(frames: list[int], budget: int = SLICE_FRAMES) -> list[list[int]]:
    """A batch's utterances (positions, by their frame counts) in forward passes of at most
    ``budget`` padded frames each (``padded_rows`` x ``padded_frames`` of the longest), shortest
    first so that each pass pads little; an utterance past the budget alone."""
    slices: list[list[int]] = []
    for position in sorted(range(len(frames)), key=frames.__getitem__):
        if slices and padded_rows(len(slices[-1]) + 1) * padded_frames(frames[position]) <= budget:
            slices[-1].append(position)
        else:
            slices.append([position])
    return slices


@dataclasses.dataclass
class _Request:
    features: np.ndarray  # (num_bins, frames)
    duration: float
    done: asyncio.Future
    decode: object = None  # the request's decoder (with its hotwords), else the transcriber's


class Recognizer:
    """The model and its batching queue (one forward pass at a time, in the forward thread,
    after any stream tick waiting for it)."""

    def __init__(self, transcriber: Transcriber, limits: ServeLimits):
        self.transcriber, self.limits = transcriber, limits
        self.queue: asyncio.Queue[_Request] = asyncio.Queue()
        self.forward = ForwardThread()
        self.batches = self.utterances = self.refused = 0
        # Admitted and not yet in a forward pass: those in the queue and those whose features are
        # still being computed (a burst arrives before any of it reaches the queue).
        self.waiting = 0
        self.batch_seconds = 1.0  # the last batch's (all its slices), for Retry-After

    @property
    def full(self) -> bool:
        return self.waiting >= self.limits.max_queue

    def admit(self) -> None:
        """Refuse (503, Retry-After) when the queue is full, before any work is spent on the request."""
        if self.full:
            self.refused += 1
            batches_ahead = -(-self.waiting // self.limits.max_batch) + 1
            retry = max(1, round(batches_ahead * self.batch_seconds))
            raise HTTPError(503, f"busy: {self.waiting} utterances are waiting for the model; retry in "
                                 f"{retry} s", {"Retry-After": str(retry)})

    async def transcribe(self, samples: np.ndarray, rate: int, decode=None) -> dict:
        """``decode``: this request's decoder (``Transcriber.decoder_with`` its hotwords)."""
        self.admit()  # again: others may have come in while this upload was read
        self.waiting += 1
        queued = False
        try:
            duration = len(samples) / rate
            loop = asyncio.get_running_loop()
            features = await loop.run_in_executor(None, self.transcriber.features_of, samples, rate)
            request = _Request(features, duration, loop.create_future(), decode)
            await self.queue.put(request)
            queued = True
        finally:
            if not queued:  # bad audio, or the client went away: it waits no more
                self.waiting -= 1
        return await request.done

    async def run(self) -> None:
        """Take what is queued, one batch at a time, for as long as the server runs; a batch goes
        in slices (``forward_slices``), each answered as it is done."""
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.limits.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self.waiting -= len(batch)
            started = time.perf_counter()
            for positions in forward_slices([request.features.shape[1] for request in batch]):
                await self._run_slice([batch[i] for i in positions])
            self.batch_seconds = time.perf_counter() - started

    async def _run_slice(self, batch: list[_Request]) -> None:
        try:
            results = await self.forward.run(UPLOAD, self._forward, [r.features for r in batch],
                                             [r.decode for r in batch])
        except Exception as err:  # noqa: BLE001 - a failed batch fails its requests, not the server
            results = [err] * len(batch)
        for request, result in zip(batch, results):
            if request.done.done():  # the client went away (its handler was cancelled)
                continue
            try:
                if isinstance(result, Exception):
                    raise result
                request.done.set_result(self._answer(request, *result))
            except Exception as err:  # noqa: BLE001
                request.done.set_exception(err)

    def _answer(self, request: _Request, text: str, log_probs: np.ndarray) -> dict:
        duration = round(request.duration, 3)
        return {"text": text, "words": timed_words(text, log_probs, self.transcriber.frame_seconds, duration),
                "duration": duration}

    def _forward(self, features: list[np.ndarray], decoders: list | None = None) -> list[tuple[str, np.ndarray]]:
        frames = padded_frames(max(f.shape[1] for f in features))
        rows = padded_rows(len(features))
        bins = features[0].shape[0]
        padded = np.zeros((rows, 1, bins, frames), dtype=np.float32)
        lengths = np.full(rows, frames, dtype=np.int32)  # filler rows: whole (any length would do)
        for row, spect in enumerate(features):
            padded[row, 0, :, : spect.shape[1]] = spect
            lengths[row] = spect.shape[1]
        log_probs = network_log_probs(self.transcriber.network, padded, lengths)[: len(features)]
        self.batches, self.utterances = self.batches + 1, self.utterances + len(features)
        decoders = [decode or self.transcriber.decode for decode in decoders or [None] * len(log_probs)]
        return [(decode(lp), lp) for decode, lp in zip(decoders, log_probs)]


class AfterTick(NamedTuple):
    """A stream as a tick left it, read in the forward thread (the next tick may be running by
    the time its handler looks): the partial text, and how many segments have ended."""

    partial: str
    segments: int


class StreamTicks:
    """What every open stream has sent since the last tick, run together in the forward thread
    (before any upload waiting for it): streams whose inputs to a stage have the same shape share
    one call of it (``stream.step``). While a tick runs, the next one's chunks gather, all of them:
    a stream's handler does not wait for a tick before it reads its next chunk, so a tick that
    takes longer than the audio it carries is followed by one that carries everything that came
    meanwhile, and the streams catch up instead of falling a chunk further behind each tick."""

    def __init__(self, forward: ForwardThread):
        self.forward = forward
        self.pending: dict = {}  # stream -> {"samples": [...], "end": bool, "done": Future}
        self.wake = asyncio.Event()
        self.ticks = 0

    def add(self, stream, samples: np.ndarray | None = None, end: bool = False) -> asyncio.Future:
        """These samples (and the end, if ``end``) for the next tick; the future of that tick (an
        ``AfterTick`` of this stream)."""
        entry = self.pending.get(stream)
        if entry is None:
            entry = self.pending[stream] = {"samples": [], "end": False,
                                            "done": asyncio.get_running_loop().create_future()}
        if samples is not None:
            entry["samples"].append(samples)
        entry["end"] = entry["end"] or end
        self.wake.set()
        return entry["done"]

    def queued(self, stream) -> int:
        """The samples of ``stream`` waiting for the next tick."""
        entry = self.pending.get(stream)
        return sum(len(s) for s in entry["samples"]) if entry else 0

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, {}
            streams = list(batch)
            samples = [np.concatenate(e["samples"]) if e["samples"] else None for e in batch.values()]
            try:
                after = await self.forward.run(TICK, _tick, streams, samples, [e["end"] for e in batch.values()])
                error = None
            except Exception as err:  # noqa: BLE001 - a failed tick fails its streams, not the server
                error = err
            self.ticks += 1
            for position, entry in enumerate(batch.values()):
                if error is None:
                    entry["done"].set_result(after[position])
                else:
                    entry["done"].set_exception(error)


def _tick(streams: list, samples: list, ends: list[bool]) -> list[AfterTick]:
    """One tick, in the forward thread: the streams a step on, and what each then shows."""
    from .stream import step

    step(streams, samples, ends)
    return [AfterTick(stream.partial, len(stream.segments)) for stream in streams]


class StreamRefused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


async def recognise_stream(ws, recognizer: Recognizer, ticks: StreamTicks, limits: ServeLimits) -> bool:
    """One /stream session on an open WebSocket: the start message, audio chunks, the end; the
    chunks go through the model with the other streams' (``StreamTicks``).
    Returns whether the final result was sent (not when the client went away first)."""
    import json

    from aiohttp import WSMsgType

    transcriber = recognizer.transcriber
    rate = transcriber.features.sample_rate

    async def receive():
        try:
            message = await ws.receive(timeout=limits.idle_seconds)
        except asyncio.TimeoutError:
            raise StreamRefused(CLOSE_IDLE, f"no message for {limits.idle_seconds:g} s") from None
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        return message

    def control(message) -> dict:
        if message.type != WSMsgType.TEXT:
            raise StreamRefused(CLOSE_PROTOCOL, "expected a JSON text message")
        try:
            data = json.loads(message.data)
        except ValueError:
            raise StreamRefused(CLOSE_PROTOCOL, "a text message that is not JSON") from None
        if not isinstance(data, dict):
            raise StreamRefused(CLOSE_PROTOCOL, "a JSON message must be an object")
        return data

    try:
        transcriber.streaming_model()
    except Ds2streamError as err:
        raise StreamRefused(CLOSE_UNSUPPORTED, str(err)[:120]) from None
    message = await receive()
    if message is None:
        return False
    start = control(message)
    unknown = sorted(set(start) - START_KEYS)
    if unknown:  # a misspelt key would otherwise be a setting silently not applied
        raise StreamRefused(CLOSE_PROTOCOL, f"unknown start keys {', '.join(unknown)}; "
                                            f"known: {', '.join(sorted(START_KEYS))}"[:120])
    if start.get("sample_rate") != rate:
        raise StreamRefused(CLOSE_UNSUPPORTED, f"sample_rate must be {rate} (got {start.get('sample_rate')!r})")
    dtype = STREAM_FORMATS.get(start.get("format", "s16le"))
    if dtype is None:
        raise StreamRefused(CLOSE_UNSUPPORTED, f"format must be one of {', '.join(STREAM_FORMATS)}")
    try:
        hotwords = request_hotwords(transcriber, limits, items=start["hotwords"]) if "hotwords" in start else None
    except HotwordsError as err:
        raise StreamRefused(CLOSE_PROTOCOL, str(err)[:120]) from None
    rules = stream_rules(start, limits)
    stream, shown, received, told = transcriber.open_stream(hotwords, rules), "", 0, 0
    await ws.send_json({"ready": True, "sample_rate": rate} | ({"endpoint": rules.to_dict()} if rules else {}))

    async def tell(previous, tick, partial: bool = True):
        """After ``previous`` (the teller of the tick before), what ``tick`` changed: the segments
        it ended, the partial if it changed."""
        nonlocal shown, told
        if previous is not None:
            await previous
        after = await asyncio.shield(tick)  # a client gone mid-tick does not cancel the others' tick
        for segment in stream.segments[told: after.segments]:
            await ws.send_json(segment.to_dict())
        told = max(told, after.segments)
        if partial and after.partial != shown:
            shown = after.partial
            await ws.send_json({"partial": shown})

    # The loop reads chunks without waiting for their ticks (StreamTicks); a chain of tellers
    # (at most two: the tick running, the next) answers each tick in order.
    teller = teller_tick = None
    # Without endpoints the stream is one utterance, held to max_seconds; with them each segment is.
    limit = limits.max_seconds * rate if rules is None else float("inf")
    try:
        while True:
            if teller is not None and teller.done():
                teller.result()  # a tick or a send that failed: raised here
            message = await receive()
            if message is None:  # the client went away: nothing to answer
                return False
            if message.type == WSMsgType.BINARY:
                if len(message.data) % dtype.itemsize:
                    raise StreamRefused(CLOSE_PROTOCOL, f"a chunk of {len(message.data)} bytes is not whole "
                                                        f"{start.get('format', 's16le')} samples")
                samples = np.frombuffer(message.data, dtype)
                if dtype.kind == "f" and not np.isfinite(samples).all():
                    raise StreamRefused(CLOSE_PROTOCOL, "samples that are NaN or infinite")
                if received + len(samples) > limit:
                    samples = samples[: max(0, int(limit) - received)]
                received += len(samples)
                if ticks.queued(stream) >= MAX_QUEUED_SECONDS * rate:
                    await teller  # a client faster than real time waits for the model
                # int16 as it comes (the feature kernel scales it), floats as float32
                tick = ticks.add(stream, samples.astype(np.int16 if dtype.kind == "i" else np.float32))
                if tick is not teller_tick:
                    teller, teller_tick = asyncio.ensure_future(tell(teller, tick)), tick
                if received < limit:
                    continue
            elif not control(message).get("end"):
                raise StreamRefused(CLOSE_PROTOCOL, 'the only message after the start is {"end": true}')
            if received < transcriber.features.min_samples:
                raise StreamRefused(CLOSE_PROTOCOL, f"the stream ended after {received} samples, less than one "
                                                    f"window")
            ended = time.perf_counter()
            await tell(teller, ticks.add(stream, end=True), partial=False)
            await ws.send_json(transcriber.stream_result(stream, received, ended))
            await ws.close()
            return True
    finally:
        if teller is not None:
            teller.cancel()  # the client went away, or was refused: nothing more to tell it


def stream_rules(start: dict, limits: ServeLimits) -> EndpointRules | None:
    """The endpoint rules a start message asks for (None: none), max_segment held to the
    server's max_seconds; a bad value refuses the stream with the reason."""
    if start.get("endpoint") is None:
        return None
    try:
        rules = EndpointRules.from_dict(start["endpoint"])
    except ConfigError as err:
        raise StreamRefused(CLOSE_PROTOCOL, str(err)[:120]) from None
    return dataclasses.replace(rules, max_segment=min(rules.max_segment, limits.max_seconds))


async def read_upload(request, limits: ServeLimits) -> tuple[bytes, list[str] | None]:
    """The audio bytes of a request (the multipart field ``file``, or the raw body) and the lines
    of its ``hotwords`` (a multipart field, or query parameters; None without)."""
    from aiohttp import web

    content_type, limit = request.content_type, int(limits.max_upload_mb * 1e6)
    too_large = HTTPError(413, f"upload larger than {limits.max_upload_mb:g} MB")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    queried = request.query.getall("hotwords", [])
    hotwords = [line for value in queried for line in value.splitlines()] if queried else None
    try:
        if content_type == "multipart/form-data":
            reader = await request.multipart()
            data = None
            async for part in reader:
                if part.name not in ("file", "hotwords"):
                    await part.release()
                    continue
                value = bytearray()  # read in chunks: a multipart body is not held to client_max_size
                while chunk := await part.read_chunk(1 << 16):
                    value += chunk
                    if len(value) > limit:
                        raise too_large
                if part.name == "file":
                    data = bytes(value)
                elif hotwords is not None:
                    raise HTTPError(400, "hotwords given twice (fields or the query): give them once")
                else:
                    try:
                        hotwords = value.decode("utf-8").splitlines()
                    except UnicodeDecodeError:
                        raise HTTPError(400, "the hotwords field is not UTF-8 text") from None
            if data is None:
                raise HTTPError(400, "multipart upload without a field named 'file'")
            return data, hotwords
        if content_type.startswith("audio/") or content_type in RAW_AUDIO_TYPES:
            return await request.read(), hotwords
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    raise HTTPError(415, f"content type {content_type!r} is not audio: send the file as a multipart field "
                         f"'file', or as the body with an audio/* content type")


def request_hotwords(transcriber: Transcriber, limits: ServeLimits, lines=None, items=None) -> Hotwords:
    """A request's hotwords: ``lines`` of a hotwords file (POST) or ``items``, a JSON list (the
    /stream start message), their boost by default the server's, within ``limits``; a
    HotwordsError that says what is wrong otherwise."""
    default = transcriber.hotwords.default_boost
    if items is None:
        hotwords = Hotwords.parse(lines, "hotwords", default)
    else:
        hotwords = Hotwords.from_items(items, "hotwords", default)
    hotwords.check_within(limits.max_hotwords, limits.max_hotword_chars, "hotwords")
    return hotwords


def make_app(transcriber: Transcriber, limits: ServeLimits = ServeLimits()):
    from aiohttp import web

    recognizer = Recognizer(transcriber, limits)
    min_seconds = transcriber.features.min_samples / transcriber.features.sample_rate

    async def transcribe(request):
        started = time.perf_counter()
        try:
            recognizer.admit()  # before reading the upload: a full server spends nothing on it
            data, hotword_lines = await read_upload(request, limits)
            try:
                hotwords = None if hotword_lines is None else request_hotwords(transcriber, limits, hotword_lines)
            except HotwordsError as err:
                raise HTTPError(400, str(err)) from None
            if not data:
                raise HTTPError(422, "empty upload")
            try:
                samples, rate = read_audio(data, name="the upload", max_seconds=limits.max_seconds)
            except AudioError as err:
                raise HTTPError(422, str(err)) from None
            if len(samples) / rate < min_seconds:
                raise HTTPError(422, f"the upload holds {len(samples) / rate:.3f} s of audio, less than one "
                                     f"window ({min_seconds:.3f} s)")
            result = await recognizer.transcribe(samples, rate, transcriber.decoder_with(hotwords))
        except HTTPError as err:
            return web.json_response({"error": str(err)}, status=err.status, headers=err.headers)
        result["seconds"] = round(time.perf_counter() - started, 3)
        return web.json_response(result)

    streams = {"open": 0, "refused": 0, "done": 0}
    ticks = StreamTicks(recognizer.forward)

    async def stream(request):
        ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=None)
        await ws.prepare(request)
        if streams["open"] >= limits.max_streams:
            streams["refused"] += 1
            await ws.close(code=CLOSE_BUSY, message=f"{limits.max_streams} streams are open: retry later".encode())
            return ws
        streams["open"] += 1
        try:
            streams["done"] += await recognise_stream(ws, recognizer, ticks, limits)
        except StreamRefused as refusal:
            await ws.close(code=refusal.code, message=str(refusal).encode()[:120])
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away mid-stream: its slot is freed below
        finally:
            streams["open"] -= 1
        return ws

    page_html = PAGE.read_text()  # read once, not per request
    from .stream import check_streamable

    try:
        check_streamable(transcriber.model_config, transcriber.features)
        streaming = True
    except ConfigError:
        streaming = False

    async def page(_request):
        return web.Response(text=page_html, content_type="text/html")

    async def health(_request):
        return web.json_response({"status": "busy" if recognizer.full else "ok", "streaming": streaming,
                                  "decoder": transcriber.decoder.decoder,
                                  "sample_rate": transcriber.features.sample_rate,
                                  "batches": recognizer.batches, "utterances": recognizer.utterances,
                                  "queued": recognizer.waiting, "max_queue": limits.max_queue,
                                  "refused": recognizer.refused, "streams": streams["open"],
                                  "max_streams": limits.max_streams, "streams_refused": streams["refused"],
                                  "streams_done": streams["done"], "stream_ticks": ticks.ticks})

    async def start_batching(app):
        app["batching"] = asyncio.get_running_loop().create_task(recognizer.run())
        app["ticks"] = asyncio.get_running_loop().create_task(ticks.run())

    async def stop_batching(app):
        app["batching"].cancel()
        app["ticks"].cancel()
        recognizer.forward.shutdown()

    app = web.Application(client_max_size=int(limits.max_upload_mb * 1e6))
    app.router.add_get("/", page)
    app.router.add_get("/health", health)
    app.router.add_post("/transcribe", transcribe)
    app.router.add_get("/stream", stream)
    app.on_startup.append(start_batching)
    app.on_cleanup.append(stop_batching)
    return app


def serve(transcriber: Transcriber, host: str, port: int, limits: ServeLimits = ServeLimits(), print_=print):
    from aiohttp import web

    print_(f"serving on http://{host}:{port}/ (POST /transcribe, WebSocket /stream; Ctrl-C stops)")
    web.run_app(make_app(transcriber, limits), host=host, port=port, print=None, access_log=None)


def warm_up(transcriber: Transcriber, limits: ServeLimits) -> None:
    """Compile the shapes of one short utterance alone (the first request would wait for it)."""
    silence = np.zeros(transcriber.features.sample_rate, dtype=np.int16)
    Recognizer(transcriber, limits)._forward([transcriber.features_of(silence, transcriber.features.sample_rate)])


