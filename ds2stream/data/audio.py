"""Reading audio: any file soundfile reads (FLAC, WAV, ...), as int16 mono samples."""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import soundfile

from ..errors import DataError


class AudioError(DataError):
    """Audio that cannot be used. ``kind`` says why: unreadable_audio, empty_audio, channels,
    too_long or span (the kinds of ``sources.PROBLEM_KINDS``)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def read_audio(source: str | Path | bytes, name: str | None = None, max_seconds: float | None = None,
               span: tuple[float, float] | None = None, channel: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a file path or encoded bytes to ``(int16 samples, sample_rate)``; any bit depth
    libsndfile reads (8, 16, 24, 32-bit, float) comes back as 16-bit.

    :param name: how messages call the source (default: the path, or ``<bytes>``).
    :param max_seconds: refuse longer audio (of the span, if one is given) from its header, before
        decoding it.
    :param span: ``(start, duration)`` in seconds: decode only these samples (``round(seconds x
        rate)``, as Lhotse counts them), e.g. one supervision of a long recording. An end past the
        file's by at most ``SPAN_TOLERANCE`` seconds (rounding in a manifest) is cut at the file's end.
    :param channel: take this channel of a multi-channel file (default: the file must be mono).
    Raises :class:`AudioError` naming the source when the data cannot be decoded (a truncated
    WAV included: libsndfile would return what is there), holds no samples, has more than one
    channel and none was chosen, is longer than ``max_seconds``, or the span lies outside it.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    name = name or ("<bytes>" if is_bytes else str(source))
    if is_bytes and len(source) == 0:
        raise AudioError("empty_audio", f"{name}: the file is empty (0 bytes)")
    try:
        with soundfile.SoundFile(io.BytesIO(source) if is_bytes else source) as handle:
            rate = handle.samplerate
            if channel is None and handle.channels != 1:
                raise AudioError("channels", f"{name}: {handle.channels} channels; ds2stream needs mono audio "
                                             f"(mix down first, e.g. `sox in.flac -c 1 out.flac`)")
            if channel is not None and not 0 <= channel < handle.channels:
                raise AudioError("channels", f"{name}: channel {channel} asked for, the file has "
                                             f"{handle.channels}")
            first, count = _span_frames(span, rate, handle.frames, name)
            if max_seconds is not None and count > max_seconds * rate:
                raise AudioError("too_long", f"{name}: {count / rate:.0f} s of audio, longer "
                                             f"than {max_seconds:.0f} s: an unsegmented recording? split it into "
                                             f"utterances first (LibriSpeech's are at most 35 s)")
            if span is not None:
                handle.seek(first)
            # Without a span everything there is (a header's count can be 0 for a streamed FLAC).
            samples = handle.read(count if span is not None else -1, dtype="int16", always_2d=True)
            samples = samples[:, channel or 0]
    except (soundfile.LibsndfileError, RuntimeError, EOFError, OSError) as err:
        reason = re.sub(r"^Error opening .*?: ", "", str(err))  # drop libsndfile's repr of our buffer
        raise AudioError("unreadable_audio", f"{name}: cannot decode audio ({reason})") from None
    if samples.shape[0] == 0:
        raise AudioError("empty_audio", f"{name}: the file holds no samples")
    if span is not None and samples.shape[0] < count:
        raise AudioError("unreadable_audio", f"{name}: {count - samples.shape[0]} samples fewer than its header "
                                             f"says (truncated?)")
    missing = _wav_bytes_missing(source)
    if missing:
        raise AudioError("unreadable_audio", f"{name}: truncated WAV ({missing} bytes of its data chunk missing)")
    return np.ascontiguousarray(samples), int(rate)


#: Seconds a span may end past its file and still be read (cut at the end): manifests round times.
SPAN_TOLERANCE = 0.025


def _span_frames(span: tuple[float, float] | None, rate: int, frames: int, name: str) -> tuple[int, int]:
    """(first sample, sample count) of a span of a file of ``frames`` samples; AudioError("span")
    when it lies outside the file."""
    if span is None:
        return 0, frames
    start, duration = span
    first, count = round(start * rate), round(duration * rate)
    if first < 0 or count <= 0 or first >= frames or first + count > frames + SPAN_TOLERANCE * rate:
        raise AudioError("span", f"{name}: span {start:.3f}-{start + duration:.3f} s lies outside the audio "
                                 f"(0-{frames / rate:.3f} s)")
    return first, min(count, frames - first)


def _wav_bytes_missing(source: str | Path | bytes) -> int:
    """How many bytes of a RIFF/WAVE file's data chunk (bytes or a path) are not there (0 when
    whole, or not a WAV): libsndfile decodes a truncated WAV without a word."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            def read(position: int, count: int) -> bytes:
                handle.seek(position)
                return handle.read(count)
            return _chunk_bytes_missing(read, os.fstat(handle.fileno()).st_size)
    return _chunk_bytes_missing(lambda position, count: bytes(source[position:position + count]), len(source))


def _chunk_bytes_missing(read, length: int) -> int:
    """_wav_bytes_missing over ``read(position, count)`` of a file of ``length`` bytes, reading only
    the chunk headers."""
    header = read(0, 12)
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return 0
    position = 12
    while position + 8 <= length:
        chunk = read(position, 8)
        size = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"data":
            return max(0, position + 8 + size - length)
        position += 8 + size + (size & 1)
    return 0


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Lossless FLAC bytes of int16 mono samples."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def is_flac(data: bytes) -> bool:
    return bytes(data[:4]) == b"fLaC"


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample int16 mono audio with libsoxr (its "HQ" filter: flat to 0.91 x the lower Nyquist,
    no aliasing above it, and no wrap-around at the edges), streaming in bounded memory.

    Used by ``transcribe`` for audio that is not at the feature config's rate. The whole-signal
    FFT this replaces wrapped the end of a file into its start and held its spectrum in memory.
    """
    if from_rate == to_rate:
        return samples
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    import soxr

    out = soxr.resample(np.asarray(samples, dtype=np.float32), from_rate, to_rate, quality="HQ")
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)
