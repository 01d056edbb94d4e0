"""Speech features, one config for training, eval and export: DeepSpeech2's log spectrogram or a
log-mel filterbank, normalised per utterance or per frequency bin.

The zoo computed these with librosa and two drifted configs (a Hamming window in training, a
Hanning window in eval). Here one frozen :class:`FeatureConfig` holds every number, the native
kernel (``csrc/spectrogram.pyx``) computes, and :func:`spectrogram_reference` is the plain numpy
definition the kernel is tested against.

Definition, for audio ``x`` of ``n`` samples scaled to [-1, 1] (int16 / 32767):
  frames of ``n_fft`` samples every ``hop_length``, centred (``n_fft // 2`` samples of reflect
  padding on both sides, librosa's ``center=True``): ``1 + n // hop_length`` frames;
  a symmetric window (``scipy.signal.hamming(n_fft)``, what the zoo handed to librosa);
  ``scale="linear"``: ``log1p(|rfft|)``, ``n_fft // 2 + 1`` rows (DeepSpeech2's);
  ``scale="mel"``: ``log(max(W @ |rfft|^2, MEL_FLOOR))``, ``n_mels`` rows, ``W`` the triangular
  filters of :func:`mel_filterbank` (HTK's mel scale, peaks of 1, no area normalisation: Kaldi's
  and torchaudio's ``fbank`` convention);
  then ``normalize``: none; ``"utterance"``, ``(s - mean) / max(std, STD_FLOOR)`` over the whole
  utterance (DeepSpeech2's); or ``"per_bin"``, the same for each row on its own (cepstral mean and
  variance normalisation: a fixed channel or vocal-tract colouring is a constant per row of the
  log spectrum, and it subtracts it); or ``"sliding"``, each row's mean over the last
  ``SLIDING_WINDOW`` frames up to and including this one subtracted (Kaldi's online, causal CMN:
  a frame never depends on a later one, so a stream's features are the whole utterance's); or
  ``"global"``, each row's mean and std over the training set (``global_mean``, ``global_std``,
  computed once by ``ds2stream train`` and carried by the config: ESPnet's and WeNet's global CMVN;
  causal too, and exact from a stream's first frame); or ``"per_bin_mean"``, each row's mean
  removed as ``per_bin`` does, then one std over the whole utterance: a row that is nearly
  constant (the empty band above 4 kHz of audio that was 8 kHz, a microphone's dead band) stays
  nearly 0 when ``dynamic_range_db`` has flattened it (``per_bin`` scales any row to unit variance).
  ``dynamic_range_db`` (mel only, off by default): before normalising, energies more than that far
  under the utterance's loudest are raised to it, as Whisper's front end does at 80 dB.
Output float32 ``(rows, frames)``.
"""
from __future__ import annotations

import dataclasses
import enum
import functools

import numpy as np

from ._config import config_from_dict
from .errors import ConfigError, DataError

#: The normalisation divides by at least this, so silence gives zeros, never NaN.
STD_FLOOR = 1e-5
#: Frames of the causal mean of ``normalize="sliding"`` (3 s at a 10 ms hop; Kaldi's online
#: recognisers use 6 s with global statistics before it fills, which a stream here does without).
SLIDING_WINDOW = 300
#: int16 PCM is scaled by 1/32767, as the zoo does.
INT16_SCALE = 32767.0
#: Filterbank energies are floored here before the log (Whisper's and ESPnet's floor): digital
#: silence gives log(1e-10) = -23, not -inf.
MEL_FLOOR = 1e-10


class Window(str, enum.Enum):
    """Analysis window; symmetric, as the zoo's scipy window functions."""

    HAMMING = "hamming"
    HANN = "hann"


class Scale(str, enum.Enum):
    """The frequency axis of the features."""

    LINEAR = "linear"  # every FFT bin, log1p of the magnitude (DeepSpeech2)
    MEL = "mel"  # mel filterbank energies, log of the power


class Normalize(str, enum.Enum):
    """Mean and variance normalisation. The order of the first three is the kernel's mode number."""

    NONE = "none"
    UTTERANCE = "utterance"  # one mean and std over the whole utterance (DeepSpeech2)
    PER_BIN = "per_bin"  # a mean and std per frequency row (cepstral mean and variance normalisation)
    SLIDING = "sliding"  # each row's mean over the last SLIDING_WINDOW frames (causal: streams)
    GLOBAL = "global"  # each row's mean and std over the training set (global CMVN; causal)
    PER_BIN_MEAN = "per_bin_mean"  # each row's mean removed, one std over the utterance

    @property
    def causal(self) -> bool:
        """A frame's features depend on no later frame: what streaming recognition needs."""
        return self in (Normalize.NONE, Normalize.SLIDING, Normalize.GLOBAL)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Every number of the spectrogram. Saved in shard indexes and checkpoints."""

    sample_rate: int = 16000  # Hz; audio at another rate is resampled before the features
    n_fft: int = 320  # samples per frame = window length (20 ms at 16 kHz)
    hop_length: int = 160  # samples between frames (10 ms at 16 kHz)
    window: Window = Window.HAMMING
    normalize: Normalize = Normalize.UTTERANCE  # True / False in configs written before per_bin
    scale: Scale = Scale.LINEAR
    n_mels: int = 80  # rows of a mel config
    f_min: float = 20.0  # Hz, the mel filters' range (Kaldi's default low edge) ...
    f_max: float | None = None  # ... and its top; None: half the sample rate
    # normalize="global": each row's mean and std over the training set, one number per row
    global_mean: tuple[float, ...] | None = None
    global_std: tuple[float, ...] | None = None
    # mel only: energies more than this many dB under the utterance's loudest are raised to that
    # level before normalising (None: off); needs the whole utterance, so never with a causal
    # normalize (none included: a stream would floor each chunk by its own loudest frame)
    dynamic_range_db: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "window", Window(self.window))
        object.__setattr__(self, "scale", Scale(self.scale))
        normalize = self.normalize
        if isinstance(normalize, bool):
            normalize = Normalize.UTTERANCE if normalize else Normalize.NONE
        object.__setattr__(self, "normalize", Normalize(normalize))
        if self.n_fft < 4 or self.n_fft % 2:
            raise ConfigError(f"n_fft must be even and at least 4, got {self.n_fft}")
        if not 0 < self.hop_length:
            raise ConfigError(f"hop_length must be positive, got {self.hop_length}")
        if self.scale is Scale.MEL:
            if not 0 <= self.f_min < self.mel_top <= self.sample_rate / 2:
                raise ConfigError(f"the mel range must satisfy 0 <= f_min < f_max <= sample_rate / 2, got "
                                 f"f_min={self.f_min}, f_max={self.f_max}, sample_rate={self.sample_rate}")
            if self.n_mels < 1:
                raise ConfigError(f"n_mels must be positive, got {self.n_mels}")
        if self.dynamic_range_db is not None:
            if self.scale is not Scale.MEL or not self.dynamic_range_db > 0:
                raise ConfigError(f"dynamic_range_db is a positive range of mel energies, got {self.dynamic_range_db} "
                                  f"with {self.scale.value} features")
            if self.normalize.causal:
                raise ConfigError(f"dynamic_range_db needs the whole utterance's loudest frame: not with the causal "
                                  f"normalize {self.normalize.value!r}")
        self._check_global_statistics()

    def _check_global_statistics(self) -> None:
        if self.global_mean is None and self.global_std is None:
            return  # a global config without them yet: `ds2stream train` computes them
        if self.normalize is not Normalize.GLOBAL:
            raise ConfigError(f"global_mean and global_std are for normalize 'global', not {self.normalize.value!r}")
        if self.global_mean is None or self.global_std is None:
            raise ConfigError("normalize 'global' needs both global_mean and global_std, or neither (to be computed)")
        mean, std = (tuple(float(v) for v in values) for values in (self.global_mean, self.global_std))
        for name, values in (("global_mean", mean), ("global_std", std)):
            if len(values) != self.num_bins:
                raise ConfigError(f"{name} has {len(values)} values; the features have {self.num_bins} rows")
        if not all(np.isfinite(mean)) or not all(np.isfinite(s) and s > 0 for s in std):
            raise ConfigError("global_mean must be finite and global_std finite and positive in every row")
        object.__setattr__(self, "global_mean", mean)  # tuples: the config stays hashable
        object.__setattr__(self, "global_std", std)

    @property
    def fft_bins(self) -> int:
        """Bins of the FFT (161 for n_fft = 320)."""
        return self.n_fft // 2 + 1

    @property
    def mel_top(self) -> float:
        """The mel filters' top frequency: f_max, or half the sample rate."""
        return self.sample_rate / 2 if self.f_max is None else self.f_max

    @property
    def num_bins(self) -> int:
        """Rows of the features: the FFT bins (161 for n_fft = 320), or n_mels."""
        return self.n_mels if self.scale is Scale.MEL else self.fft_bins

    @property
    def min_samples(self) -> int:
        """The shortest audio with a defined spectrogram: reflect padding needs n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def unnormalized(self) -> "FeatureConfig":
        """The same features before any normalisation."""
        return dataclasses.replace(self, normalize=Normalize.NONE, global_mean=None, global_std=None,
                                   dynamic_range_db=None)  # the floor needs a whole utterance: no causal config has it

    def num_frames(self, num_samples):
        """Frames for audio of num_samples (an int or an integer array)."""
        return 1 + num_samples // self.hop_length

    def window_array(self) -> np.ndarray:
        n = np.arange(self.n_fft, dtype=np.float64)
        phase = 2.0 * np.pi * n / (self.n_fft - 1)
        a0 = 0.54 if self.window is Window.HAMMING else 0.5
        return a0 - (1.0 - a0) * np.cos(phase)

    def to_dict(self) -> dict:
        fields = {**dataclasses.asdict(self), "window": self.window.value, "normalize": self.normalize.value,
                  "scale": self.scale.value}
        if self.global_mean is None:  # configs without statistics read as they did before there were any
            del fields["global_mean"], fields["global_std"]
        if self.dynamic_range_db is None:  # likewise without a range: shard sets and runs made before resume
            del fields["dynamic_range_db"]
        return fields

    def differences(self, other: "FeatureConfig") -> str:
        """The fields where ``other`` differs, as ``name mine -> other``; statistics by name only."""
        mine, theirs = self.to_dict(), other.to_dict()
        changed = [name for name in dict.fromkeys([*mine, *theirs]) if mine.get(name) != theirs.get(name)]
        return ", ".join(name if name.startswith("global_") else f"{name} {mine.get(name)!r} -> {theirs.get(name)!r}"
                         for name in changed)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        return config_from_dict(cls, data)


def as_float_audio(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Validate mono audio and return it as contiguous float32 in [-1, 1].

    int16 input is scaled by 1/32767; float input is taken as already scaled.
    Raises DataError for anything but a 1-D array, audio shorter than ``config.min_samples``,
    and NaN or inf samples.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise DataError(f"audio must be 1-D (mono samples), got shape {audio.shape}")
    if audio.shape[0] < config.min_samples:
        raise DataError(
            f"audio has {audio.shape[0]} samples; the spectrogram needs at least "
            f"{config.min_samples} ({1000 * config.min_samples / config.sample_rate:.1f} ms)"
        )
    if audio.dtype == np.int16:
        return (audio.astype(np.float32) / np.float32(INT16_SCALE))
    if not np.issubdtype(audio.dtype, np.floating):
        raise DataError(f"audio must be int16 or float, got {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        bad = int(np.flatnonzero(~np.isfinite(audio))[0])
        raise DataError(f"audio holds NaN or inf (first at sample {bad})")
    return audio


def hz_to_mel(hz):
    """HTK's mel scale (Kaldi's, torchaudio's): 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


#: VTLP's boundary frequency (Jaitly & Hinton 2013: 4.8 kHz at 16 kHz): below it frequencies
#: scale by the warp factor, above it a straight line takes the top of the band to itself.
VTLP_BOUNDARY = 0.3


def vtlp_warp(hz, factor: float, sample_rate: int):
    """Vocal tract length perturbation of frequencies ``hz``: ``f * factor`` up to the boundary
    ``VTLP_BOUNDARY * sample_rate * min(factor, 1) / factor``, then linear to ``sample_rate / 2``,
    which stays put (Jaitly & Hinton 2013, eq. 1)."""
    hz = np.asarray(hz, dtype=np.float64)
    nyquist = sample_rate / 2
    boundary = VTLP_BOUNDARY * sample_rate * min(factor, 1.0) / factor
    above = nyquist - (nyquist - boundary * factor) / (nyquist - boundary) * (nyquist - hz)
    return np.where(hz <= boundary, hz * factor, above)


def mel_filterbank(config: FeatureConfig, warp: float = 1.0) -> np.ndarray:
    """The mel filters, float32 ``(n_mels, fft_bins)``: triangles equally spaced on HTK's mel scale
    between ``f_min`` and ``f_max``, each 1 at its centre and 0 at its neighbours' centres,
    evaluated at the FFT bins' frequencies. ``warp`` != 1 moves the filters' corners by
    :func:`vtlp_warp` (VTLP: Kaldi warps the filterbank the same way for VTLN).

    Raises ConfigError when a filter (unwarped) falls between two FFT bins: too many mel filters
    for ``n_fft`` (Kaldi refuses the same).
    """
    corners = mel_to_hz(np.linspace(hz_to_mel(config.f_min), hz_to_mel(config.mel_top), config.n_mels + 2))
    if warp != 1.0:
        corners = vtlp_warp(corners, warp, config.sample_rate)
    bins = np.arange(config.fft_bins) * config.sample_rate / config.n_fft
    left, centre, right = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    if warp == 1.0:
        empty = np.flatnonzero(weights.max(axis=1) == 0)
        if empty.size:
            raise ConfigError(f"mel filter {int(empty[0])} of {config.n_mels} covers no FFT bin (n_fft = "
                             f"{config.n_fft}, {config.sample_rate / config.n_fft:g} Hz apart): use fewer "
                             f"n_mels, a larger n_fft or a higher f_min")
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _plan(config: FeatureConfig):
    from . import _spectrogram

    return _spectrogram.SpectrogramPlan(
        config.n_fft, config.hop_length, config.window_array().astype(np.float32)
    )


@functools.lru_cache(maxsize=8)
def _filterbank(config: FeatureConfig) -> np.ndarray:
    return mel_filterbank(config)


def spectrogram(audio: np.ndarray, config: FeatureConfig = FeatureConfig(), warp: float = 1.0) -> np.ndarray:
    """The features of one utterance with the native kernel: float32 ``(num_bins, frames)``.

    ``warp``: a VTLP factor for the mel filters (augmentation; mel configs only).
    The kernel releases the GIL, so threads computing features run in parallel.
    """
    samples = as_float_audio(audio, config)
    out = np.empty((config.num_bins, config.num_frames(samples.shape[0])), dtype=np.float32)
    # The kernel normalises per utterance or per row; the sliding mean, global statistics, per_bin_mean
    # and normalising after a dynamic-range floor are applied here.
    in_kernel = config.normalize in (Normalize.UTTERANCE, Normalize.PER_BIN) and config.dynamic_range_db is None
    mode = list(Normalize).index(config.normalize) if in_kernel else 0
    if config.scale is Scale.MEL:
        weights = _filterbank(config) if warp == 1.0 else mel_filterbank(config, warp)
        _plan(config).compute(samples, out, mode, STD_FLOOR, weights, MEL_FLOOR)
    elif warp != 1.0:
        raise ConfigError("VTLP warps the mel filters: it needs mel features (scale='mel')")
    else:
        _plan(config).compute(samples, out, mode, STD_FLOOR)
    if config.dynamic_range_db is not None:
        return normalize(within_dynamic_range(out, config.dynamic_range_db), config)
    if config.normalize is Normalize.SLIDING:
        return sliding_mean_removed(out)
    if config.normalize is Normalize.GLOBAL:
        return globally_normalized(out, config)
    if config.normalize is Normalize.PER_BIN_MEAN:
        return normalize(out, config)
    return out


def within_dynamic_range(log_mel: np.ndarray, range_db: float) -> np.ndarray:
    """Log mel energies (natural log of power) raised to at least the loudest minus ``range_db``: a
    recording's near-empty band (8 kHz audio above 4 kHz, 70 dB under its speech) becomes flat
    instead of a noise that per-row normalisation scales up to the speech's loudness."""
    if log_mel.size == 0:
        return log_mel
    return np.maximum(log_mel, log_mel.max() - np.float32(range_db / 10 * np.log(10))).astype(np.float32)


def globally_normalized(spect: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Unnormalised features ``spect`` (rows, frames) minus each row's training-set mean, over its std."""
    if config.global_mean is None:
        raise ConfigError("features normalised 'global' need the training set's statistics (global_mean, "
                          "global_std): `ds2stream train --feature-norm global` computes them from its --shards")
    mean = np.asarray(config.global_mean, np.float32)[:, None]
    std = np.asarray(config.global_std, np.float32)[:, None]
    return (spect - mean) / std


def sliding_mean_removed(spect: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
    """``spect`` (rows, frames) minus each row's mean over the last ``SLIDING_WINDOW`` frames up to
    and including each frame. ``history``: the frames before ``spect`` (rows, up to
    ``SLIDING_WINDOW - 1``), for a stream going on; the result is the same as over the whole."""
    rows, frames = spect.shape
    before = np.zeros((rows, 0), np.float64) if history is None else history.astype(np.float64)
    if before.shape[1] >= SLIDING_WINDOW:
        before = before[:, before.shape[1] - SLIDING_WINDOW + 1:]
    known = np.concatenate([before, spect.astype(np.float64)], axis=1)
    totals = np.concatenate([np.zeros((rows, 1)), np.cumsum(known, axis=1)], axis=1)
    end = np.arange(before.shape[1], known.shape[1]) + 1  # frame t's window: [end - window, end)
    start = np.maximum(end - SLIDING_WINDOW, 0)
    # The first frames of a stream average over what there is (Kaldi's rule without global stats).
    means = (totals[:, end] - totals[:, start]) / (end - start)
    return (spect - means).astype(np.float32)


def normalize(spect: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``spect`` (rows, frames) normalised as ``config.normalize`` says (numpy; the reference's definition)."""
    mode = config.normalize
    if mode is Normalize.GLOBAL:
        if config.global_mean is None:
            raise ConfigError("normalize 'global' without global_mean and global_std")
        return (spect - np.array(config.global_mean)[:, None]) / np.array(config.global_std)[:, None]
    if mode is Normalize.UTTERANCE:
        return (spect - spect.mean()) / max(spect.std(), STD_FLOOR)
    if mode is Normalize.PER_BIN:
        return (spect - spect.mean(axis=1, keepdims=True)) / np.maximum(spect.std(axis=1, keepdims=True), STD_FLOOR)
    if mode is Normalize.PER_BIN_MEAN:
        centred = spect - spect.mean(axis=1, keepdims=True)
        return (centred / max(float(centred.std()), STD_FLOOR)).astype(np.float32)
    if mode is Normalize.SLIDING:
        means = np.stack([spect[:, max(0, t - SLIDING_WINDOW + 1): t + 1].mean(axis=1)
                          for t in range(spect.shape[1])], axis=1)
        return spect - means
    return spect


def spectrogram_reference(audio: np.ndarray, config: FeatureConfig = FeatureConfig(), warp: float = 1.0) -> np.ndarray:
    """The same features in vectorised numpy (float64 inside): the definition the kernel must match."""
    samples = as_float_audio(audio, config).astype(np.float64)
    pad = config.n_fft // 2
    padded = np.pad(samples, pad, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[:: config.hop_length]
    magnitude = np.abs(np.fft.rfft(frames * config.window_array(), axis=1)).T
    if config.scale is Scale.MEL:
        weights = mel_filterbank(config, warp).astype(np.float64)
        spec = np.log(np.maximum(weights @ magnitude ** 2, MEL_FLOOR))
        if config.dynamic_range_db is not None:
            spec = np.maximum(spec, spec.max() - config.dynamic_range_db / 10 * np.log(10))
    else:
        spec = np.log1p(magnitude)
    return normalize(spec, config).astype(np.float32)
