"""Reading audio: any file soundfile reads (FLAC, WAV, ...), as int16 mono samples."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import soundfile


class AudioError(ValueError):
    """Audio that cannot be used. ``kind`` says why: unreadable_audio, empty_audio or channels."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def read_audio(source: str | Path | bytes, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a file path or encoded bytes to ``(int16 samples, sample_rate)``.

    :param name: how messages call the source (default: the path, or ``<bytes>``).
    Raises :class:`AudioError` naming the source when the data cannot be decoded, holds no
    samples, or has more than one channel.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    name = name or ("<bytes>" if is_bytes else str(source))
    if is_bytes and len(source) == 0:
        raise AudioError("empty_audio", f"{name}: the file is empty (0 bytes)")
    try:
        samples, rate = soundfile.read(io.BytesIO(source) if is_bytes else source,
                                       dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, EOFError, OSError) as err:
        reason = re.sub(r"^Error opening .*?: ", "", str(err))  # drop libsndfile's repr of our buffer
        raise AudioError("unreadable_audio", f"{name}: cannot decode audio ({reason})") from None
    if samples.shape[1] != 1:
        raise AudioError(
            "channels",
            f"{name}: {samples.shape[1]} channels; ds2stream needs mono audio "
            f"(mix down first, e.g. `sox in.flac -c 1 out.flac`)",
        )
    if samples.shape[0] == 0:
        raise AudioError("empty_audio", f"{name}: the file holds no samples")
    return np.ascontiguousarray(samples[:, 0]), int(rate)


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Lossless FLAC bytes of int16 mono samples."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def is_flac(data: bytes) -> bool:
    return bytes(data[:4]) == b"fLaC"


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of int16 mono audio (the whole signal at once, through its spectrum).

    Exact for a periodic band-limited signal; for speech the edge effects stay within a few
    milliseconds. Used by ``transcribe`` for audio that is not at the feature config's rate.
    """
    if from_rate == to_rate:
        return samples
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    n_in = len(samples)
    n_out = max(1, round(n_in * to_rate / from_rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    bins = n_out // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), dtype=spectrum.dtype)])
    out = np.fft.irfft(spectrum, n_out) * (n_out / n_in)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)
