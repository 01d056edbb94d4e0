"""Reading audio: any file soundfile reads (FLAC, WAV, ...), as int16 mono samples."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, or not mono."""


def read_audio(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Decode a file path or encoded bytes to ``(int16 samples, sample_rate)``.

    Raises :class:`AudioError` naming the source when the data cannot be decoded, holds no
    samples, or has more than one channel.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    handle = io.BytesIO(source) if name == "<bytes>" else source
    try:
        samples, rate = soundfile.read(handle, dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, EOFError) as err:
        raise AudioError(f"{name}: cannot decode audio ({err})") from None
    if samples.shape[1] != 1:
        raise AudioError(f"{name}: {samples.shape[1]} channels; ds2stream needs mono audio")
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: the file holds no samples")
    return np.ascontiguousarray(samples[:, 0]), int(rate)
