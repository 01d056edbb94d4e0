"""DeepSpeech2 features: the log-magnitude spectrogram, one config for training, eval and export.

The zoo computed these with librosa and two drifted configs (a Hamming window in training, a
Hanning window in eval). Here one frozen :class:`FeatureConfig` holds every number, the native
kernel (``csrc/spectrogram.pyx``) computes, and :func:`spectrogram_reference` is the plain numpy
definition the kernel is tested against.

Definition, for audio ``x`` of ``n`` samples scaled to [-1, 1] (int16 / 32767):
  frames of ``n_fft`` samples every ``hop_length``, centred (``n_fft // 2`` samples of reflect
  padding on both sides, librosa's ``center=True``): ``1 + n // hop_length`` frames;
  a symmetric window (``scipy.signal.hamming(n_fft)``, what the zoo handed to librosa);
  ``log1p(|rfft|)``, shape ``(n_fft // 2 + 1, frames)`` float32;
  optionally ``(s - mean) / max(std, STD_FLOOR)`` over the whole utterance.
"""
from __future__ import annotations

import dataclasses
import enum
import functools

import numpy as np

from ._config import config_from_dict

#: The normalisation divides by at least this, so silence gives zeros, never NaN.
STD_FLOOR = 1e-5
#: int16 PCM is scaled by 1/32767, as the zoo does.
INT16_SCALE = 32767.0


class Window(str, enum.Enum):
    """Analysis window; symmetric, as the zoo's scipy window functions."""

    HAMMING = "hamming"
    HANN = "hann"


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Every number of the spectrogram. Saved in shard indexes and checkpoints."""

    sample_rate: int = 16000  # Hz; audio at another rate is resampled before the features
    n_fft: int = 320  # samples per frame = window length (20 ms at 16 kHz)
    hop_length: int = 160  # samples between frames (10 ms at 16 kHz)
    window: Window = Window.HAMMING
    normalize: bool = True  # per-utterance mean/std normalisation

    def __post_init__(self):
        object.__setattr__(self, "window", Window(self.window))
        if self.n_fft < 4 or self.n_fft % 2:
            raise ValueError(f"n_fft must be even and at least 4, got {self.n_fft}")
        if not 0 < self.hop_length:
            raise ValueError(f"hop_length must be positive, got {self.hop_length}")

    @property
    def num_bins(self) -> int:
        """Frequency bins of the output (161 for n_fft = 320)."""
        return self.n_fft // 2 + 1

    @property
    def min_samples(self) -> int:
        """The shortest audio with a defined spectrogram: reflect padding needs n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples):
        """Frames for audio of num_samples (an int or an integer array)."""
        return 1 + num_samples // self.hop_length

    def window_array(self) -> np.ndarray:
        n = np.arange(self.n_fft, dtype=np.float64)
        phase = 2.0 * np.pi * n / (self.n_fft - 1)
        a0 = 0.54 if self.window is Window.HAMMING else 0.5
        return a0 - (1.0 - a0) * np.cos(phase)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "window": self.window.value}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        return config_from_dict(cls, data)


def as_float_audio(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Validate mono audio and return it as contiguous float32 in [-1, 1].

    int16 input is scaled by 1/32767; float input is taken as already scaled.
    Raises ValueError for anything but a 1-D array, audio shorter than ``config.min_samples``,
    and NaN or inf samples.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono samples), got shape {audio.shape}")
    if audio.shape[0] < config.min_samples:
        raise ValueError(
            f"audio has {audio.shape[0]} samples; the spectrogram needs at least "
            f"{config.min_samples} ({1000 * config.min_samples / config.sample_rate:.1f} ms)"
        )
    if audio.dtype == np.int16:
        return (audio.astype(np.float32) / np.float32(INT16_SCALE))
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be int16 or float, got {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        bad = int(np.flatnonzero(~np.isfinite(audio))[0])
        raise ValueError(f"audio holds NaN or inf (first at sample {bad})")
    return audio


@functools.lru_cache(maxsize=8)
def _plan(config: FeatureConfig):
    from . import _spectrogram

    return _spectrogram.SpectrogramPlan(
        config.n_fft, config.hop_length, config.window_array().astype(np.float32)
    )


def spectrogram(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The features of one utterance with the native kernel: float32 ``(num_bins, frames)``.

    The kernel releases the GIL, so threads computing features run in parallel.
    """
    samples = as_float_audio(audio, config)
    out = np.empty((config.num_bins, config.num_frames(samples.shape[0])), dtype=np.float32)
    _plan(config).compute(samples, out, config.normalize, STD_FLOOR)
    return out


def spectrogram_reference(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The same features in vectorised numpy (float64 inside): the definition the kernel must match."""
    samples = as_float_audio(audio, config).astype(np.float64)
    pad = config.n_fft // 2
    padded = np.pad(samples, pad, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[:: config.hop_length]
    spec = np.log1p(np.abs(np.fft.rfft(frames * config.window_array(), axis=1))).T
    if config.normalize:
        spec = (spec - spec.mean()) / max(spec.std(), STD_FLOOR)
    return spec.astype(np.float32)
