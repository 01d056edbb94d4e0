"""Data augmentation in the reader's workers: speed, pitch, volume, a room's reverberation, noise
and a random channel on the waveform, vocal tract length perturbation (VTLP) in the mel filters,
SpecAugment on the features.
Training only: evaluation never builds an ``Augmenter``.

Every random draw for utterance ``u`` in epoch ``e`` comes from a generator seeded with
``(seed, e, u)``: the same batches come out on any rank, in any worker, after any resume, and two
ranks never share a stream (an utterance belongs to one rank per epoch). The speed factor is the
exception: it changes an utterance's length, so the sampler draws it when it plans the epoch
(``speed_choices``) and buckets the utterance by its perturbed length; the plan carries it.

Order, as in Lhotse's and ESPnet's LibriSpeech recipes: speed -> volume -> noise -> features ->
SpecAugment; the pitch (the speaker's voice) right after the speed, the room's reverberation (of
the voice, not of the noise) before the noise, the channel (a microphone or a line: after the
room's noise) before the features, VTLP in them.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from .._config import config_from_dict
from ..errors import ConfigError, DataError
from ..features import INT16_SCALE, FeatureConfig, Scale, spectrogram

#: Separates the augmentation's per-utterance streams from the sampler's ([seed, epoch] and
#: [seed, epoch, 1]) and the speed draw ([seed, epoch, SPEED_STREAM]).
UTTERANCE_STREAM = 3
SPEED_STREAM = 2
NOISE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: Every reader worker holds the whole noise folder in memory (float32): at most this much audio
#: (an hour: 230 MB per worker at 16 kHz).
MAX_NOISE_SECONDS = 3600.0
#: A noise file quieter than this (RMS, relative to full scale) is refused: mixed "at an SNR" it
#: would be scaled up from nothing, or add nothing.
MIN_NOISE_RMS = 10 ** (-80 / 20)
#: An octave: past it a voice no longer reads as a human one.
MAX_PITCH_SEMITONES = 12.0
#: Simulated rooms: reverberation times (RT60, s) and direct-to-reverberant energy ratios (dB) are
#: drawn uniformly in these ranges (living rooms and offices to halls; a close to a distant talker).
ROOM_RT60 = (0.2, 0.8)
ROOM_DRR_DB = (-3.0, 12.0)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which transforms run and how strongly; all off by default. Saved with the TrainConfig."""

    speeds: tuple = ()  # speed factors, one drawn uniformly per utterance per epoch; () = off
    volume_db: float = 0.0  # gain drawn uniformly in [-volume_db, +volume_db] dB; 0 = off
    noise_prob: float = 0.0  # share of utterances mixed with noise; 0 = off
    snr_db: tuple = (10.0, 30.0)  # the mix's signal-to-noise ratio, drawn uniformly in this range
    noise_dir: str | None = None  # a folder of audio files; None: synthetic coloured noise
    freq_masks: int = 0  # SpecAugment: frequency masks per utterance; 0 = off
    freq_mask_bins: int = 27  # the widest frequency mask
    time_masks_per_second: float = 0.0  # SpecAugment: time masks per second of audio (rounded); 0 = off
    time_mask_fraction: float = 0.04  # the widest time mask, as a share of the utterance ...
    time_mask_frames: int = 40  # ... and in frames
    vtlp: float = 0.0  # VTLP warp factors drawn uniformly in [1 - vtlp, 1 + vtlp]; 0 = off (mel features only)
    channel_prob: float = 0.0  # share of utterances played through a random channel (random_channel); 0 = off
    pitch_shift: float = 0.0  # pitch shift (tempo kept) drawn uniformly in [-x, +x] semitones; 0 = off
    reverb_prob: float = 0.0  # share of utterances played in a simulated room (room_reverb); 0 = off

    def __post_init__(self):
        object.__setattr__(self, "speeds", tuple(float(s) for s in self.speeds))
        object.__setattr__(self, "snr_db", tuple(float(s) for s in self.snr_db))
        if any(not 0.5 <= s <= 2.0 for s in self.speeds):
            raise ConfigError(f"speed factors must lie in [0.5, 2], got {self.speeds}")
        if self.volume_db < 0:
            raise ConfigError(f"volume_db is a range in dB, must be >= 0, got {self.volume_db}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ConfigError(f"noise_prob must lie in [0, 1], got {self.noise_prob}")
        if len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]:
            raise ConfigError(f"snr_db must be (low, high) dB, got {self.snr_db}")
        if self.noise_dir is not None and not Path(self.noise_dir).is_dir():
            raise ConfigError(f"noise folder {self.noise_dir} does not exist")
        if min(self.freq_masks, self.freq_mask_bins, self.time_mask_frames) < 0 or self.time_masks_per_second < 0 \
                or not 0 <= self.time_mask_fraction <= 1:
            raise ConfigError(f"SpecAugment sizes must be >= 0 (and the time mask fraction <= 1): {self}")
        if not 0.0 <= self.vtlp < 0.5:
            raise ConfigError(f"vtlp is a warp range, [1 - vtlp, 1 + vtlp], and must lie in [0, 0.5), got {self.vtlp}")
        if not 0.0 <= self.channel_prob <= 1.0:
            raise ConfigError(f"channel_prob must lie in [0, 1], got {self.channel_prob}")
        if not 0.0 <= self.reverb_prob <= 1.0:
            raise ConfigError(f"reverb_prob must lie in [0, 1], got {self.reverb_prob}")
        if not 0.0 <= self.pitch_shift <= MAX_PITCH_SEMITONES:
            raise ConfigError(f"pitch_shift is a range, [-x, +x] semitones, and must lie in "
                              f"[0, {MAX_PITCH_SEMITONES:g}], got {self.pitch_shift}")

    @property
    def waveform(self) -> bool:
        """Whether any transform needs the samples (not stored features)."""
        return bool(self.speeds) or self.volume_db > 0 or self.noise_prob > 0 or self.vtlp > 0 \
            or self.channel_prob > 0 or self.pitch_shift > 0 or self.reverb_prob > 0

    @property
    def enabled(self) -> bool:
        return self.waveform or self.freq_masks > 0 or self.time_masks_per_second > 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentConfig":
        return config_from_dict(cls, data)


#: The rates of the presets that augment (the LibriSpeech recipes' usual ones: Kaldi's 0.9/1.0/1.1
#: speeds, 2 frequency masks of up to 27 bins, Park et al.'s adaptive time masks).
STANDARD_AUGMENT = AugmentConfig(speeds=(0.9, 1.0, 1.1), volume_db=6.0, noise_prob=0.3, snr_db=(10.0, 30.0),
                         freq_masks=2, freq_mask_bins=27, time_masks_per_second=0.5)


def speed_samples(num_samples, factor: float):
    """Samples after speed perturbation by ``factor`` (an int or an integer array): the one rule
    that the sampler plans with and ``perturb_speed`` keeps to."""
    return np.rint(np.asarray(num_samples) / factor).astype(np.int64)


def speed_choices(num_speeds: int, seed: int, epoch: int, count: int) -> np.ndarray:
    """Which of ``num_speeds`` factors each of ``count`` utterances gets in ``epoch`` (uniform)."""
    return np.random.default_rng([seed, epoch, SPEED_STREAM]).integers(num_speeds, size=count)


def perturb_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play ``samples`` (float) ``factor`` times faster, pitch and tempo together (Kaldi's speed
    perturbation): resampled by libsoxr to rate / factor and read at the old rate. Exactly
    ``speed_samples`` long (libsoxr's length may differ by a sample)."""
    if factor == 1.0:
        return samples
    import soxr

    out = soxr.resample(samples, 1.0, 1.0 / factor, quality="HQ")
    return exactly(out, int(speed_samples(len(samples), factor)))


def exactly(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` cut or padded with zeros to ``length`` (a resampler's output may be a sample off)."""
    return samples[:length] if len(samples) >= length else np.pad(samples, (0, length - len(samples)))


def stretch_time(audio: np.ndarray, length: int, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """``audio`` (float) played in ``length`` samples at its own pitch: a phase vocoder (Flanagan &
    Golden 1966; as librosa's ``time_stretch``). Analysis frames are read at the rate the new
    length asks, each bin's magnitude interpolated between frames and its phase advanced by the
    bin's own measured frequency; overlap-added with the window's squared sum divided out."""
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    padded = np.pad(audio.astype(np.float32), (n_fft // 2, n_fft // 2 + n_fft))  # every sample in n_fft // hop frames
    count = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:count]
    spectrum = np.fft.rfft(frames * window, axis=1)
    spectrum = np.vstack([spectrum, np.zeros_like(spectrum[:1])])  # a silent frame past the end
    advance = (2 * np.pi * hop * np.arange(n_fft // 2 + 1) / n_fft).astype(np.float32)  # a bin's phase step
    phase = np.angle(spectrum).astype(np.float32)
    deviation = phase[1:] - phase[:-1] - advance
    deviation -= 2 * np.pi * np.round(deviation / (2 * np.pi))

    out_frames = 1 + -(-(length + n_fft // 2) // hop)
    positions = np.minimum(np.arange(out_frames) * (len(audio) / max(length, 1)), count - 1)
    index = positions.astype(np.int64)
    fraction = (positions - index)[:, None].astype(np.float32)
    magnitude = np.abs(spectrum).astype(np.float32)
    magnitude = (1 - fraction) * magnitude[index] + fraction * magnitude[index + 1]
    # summed in float64 and wrapped: over a long recording the phases run to 1e5 radians
    phase = np.cumsum(np.vstack([phase[:1], (advance + deviation[index])[:-1]]), axis=0, dtype=np.float64)
    phase = np.mod(phase, 2 * np.pi).astype(np.float32)
    stretched = np.fft.irfft(magnitude * np.cos(phase) + 1j * (magnitude * np.sin(phase)), n=n_fft, axis=1)
    stretched *= window

    out, weight = overlap_add(stretched, hop), overlap_add(np.broadcast_to(window ** 2, stretched.shape), hop)
    return (out / np.maximum(weight, 1e-8))[n_fft // 2: n_fft // 2 + length].astype(np.float32)


def overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """The sum of (count, n_fft) frames placed ``hop`` apart (``n_fft`` a multiple of ``hop``):
    frame i's k-th block of ``hop`` samples lands in block i + k."""
    count, n_fft = frames.shape
    blocks = frames.reshape(count, n_fft // hop, hop)
    out = np.zeros((count + n_fft // hop - 1, hop))
    for k in range(n_fft // hop):
        out[k:k + count] += blocks[:, k]
    return out.reshape(-1)


def shift_pitch(audio: np.ndarray, semitones: float) -> np.ndarray:
    """``audio`` (float) ``semitones`` higher (lower when negative), tempo and length kept:
    stretched in time by the factor, then played that much faster (``perturb_speed``), as
    librosa's ``pitch_shift``. Scaled down as a whole if it would leave [-1, 1]."""
    if semitones == 0.0:
        return audio
    factor = 2.0 ** (semitones / 12)
    out = perturb_speed(stretch_time(audio, int(round(len(audio) * factor))), factor)  # within a sample of it
    return within_full_scale(exactly(out, len(audio)).astype(np.float32))


def coloured_noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """White, pink or brown noise (power falling as 1/f^0, 1/f^1, 1/f^2), unit RMS."""
    exponent = rng.choice([0.0, 1.0, 2.0])
    spectrum = rng.standard_normal(num_samples // 2 + 1) + 1j * rng.standard_normal(num_samples // 2 + 1)
    frequency = np.arange(num_samples // 2 + 1, dtype=np.float64)
    frequency[0] = 1.0
    noise = np.fft.irfft(spectrum / frequency ** (exponent / 2), n=num_samples)
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


@functools.lru_cache(maxsize=4)
def load_noise(folder: str, sample_rate: int) -> tuple:
    """Every audio file under ``folder`` as float samples at ``sample_rate``: read once per process.
    DataError for a folder without audio, an unreadable or silent file, or more than
    ``MAX_NOISE_SECONDS`` of audio in all (checked from the headers before anything is decoded)."""
    import soundfile

    from ..data.audio import AudioError, read_audio, resample

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in NOISE_SUFFIXES)
    if not files:
        raise DataError(f"noise folder {folder}: no audio files ({', '.join(NOISE_SUFFIXES)})")
    total = 0.0
    for path in files:
        try:
            total += soundfile.info(path).duration
        except (soundfile.LibsndfileError, RuntimeError) as err:
            raise DataError(f"noise folder {folder}: {path}: cannot decode audio ({err})") from None
    if total > MAX_NOISE_SECONDS:
        raise DataError(f"noise folder {folder}: {total:.0f} s of audio; every reader worker holds its noise in "
                        f"memory, so at most {MAX_NOISE_SECONDS:.0f} s: give a folder with less")
    clips = []
    for path in files:
        try:
            samples, rate = read_audio(path)
        except AudioError as err:
            raise DataError(f"noise folder {folder}: {err}") from None
        clip = resample(samples, rate, sample_rate).astype(np.float32) / np.float32(INT16_SCALE)
        if float(np.sqrt(np.mean(clip.astype(np.float64) ** 2))) < MIN_NOISE_RMS:
            raise DataError(f"noise folder {folder}: {path} is silent (below -80 dBFS): it would add no noise")
        clips.append(clip)
    return tuple(clips)


def within_full_scale(audio: np.ndarray) -> np.ndarray:
    """``audio`` scaled down as a whole if it leaves [-1, 1] (a transform never clips)."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return audio / np.float32(peak) if peak > 1.0 else audio


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with g such that the power ratio is ``snr_db``; scaled down as a whole
    if it would leave [-1, 1] (a mix never clips)."""
    speech_power = float(np.mean(speech.astype(np.float64) ** 2))
    noise_power = max(float(np.mean(noise.astype(np.float64) ** 2)), 1e-20)
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    mixed = speech + np.float32(gain) * noise.astype(np.float32)
    return within_full_scale(mixed)


def random_channel(audio: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """``audio`` through a random linear channel, as another microphone or line would colour it: a
    spectral tilt of -3 to +3 dB per octave around 1 kHz (at most +-12 dB), and on half the
    utterances a band limit (a 4th-order high-pass at 50-400 Hz and low-pass at 3-7.5 kHz; the
    telephone band is 300-3,400 Hz). Applied as one gain curve on the utterance's spectrum;
    scaled down as a whole if it would leave [-1, 1]."""
    frequency = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    octaves = np.log2(np.maximum(frequency, 50.0) / 1000.0)
    gain_db = np.clip(rng.uniform(-3.0, 3.0) * octaves, -12.0, 12.0)
    gain = 10 ** (gain_db / 20)
    if rng.random() < 0.5:
        low, high = rng.uniform(50.0, 400.0), rng.uniform(3000.0, 7500.0)
        with np.errstate(divide="ignore"):
            gain = gain / np.sqrt(1 + (low / frequency) ** 8) / np.sqrt(1 + (frequency / high) ** 8)
    out = np.fft.irfft(np.fft.rfft(audio.astype(np.float64)) * gain, n=len(audio)).astype(np.float32)
    return within_full_scale(out)


def room_response(rng: np.random.Generator, sample_rate: int, rt60: float, drr_db: float) -> np.ndarray:
    """A simulated room impulse response: the direct path (1 at t = 0), then a diffuse tail of
    Gaussian noise whose energy falls 60 dB in ``rt60`` seconds, scaled so that the direct path
    carries ``drr_db`` dB more energy than the tail (Polack's statistical model of late
    reverberation; LibriSpeech recipes reverberate with measured or simulated rooms)."""
    t = np.arange(1, max(int(rt60 * sample_rate), 2)) / sample_rate
    tail = rng.standard_normal(len(t)) * np.exp(-3 * np.log(10) * t / rt60)  # amplitude: -60 dB at rt60
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def room_reverb(audio: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """``audio`` played in a random room (``room_response`` with an RT60 in ``ROOM_RT60`` and a
    direct-to-reverberant ratio in ``ROOM_DRR_DB``), cut to its own length (the plan's) and brought
    back to its own RMS level; scaled down as a whole if it would leave [-1, 1]."""
    response = room_response(rng, sample_rate, rng.uniform(*ROOM_RT60), rng.uniform(*ROOM_DRR_DB))
    dry = audio.astype(np.float64)
    size = 1 << (len(dry) + len(response) - 2).bit_length()  # a power of two >= the full convolution
    wet = np.fft.irfft(np.fft.rfft(dry, size) * np.fft.rfft(response, size), size)[:len(dry)]
    level = np.sqrt(np.mean(dry ** 2) / max(float(np.mean(wet ** 2)), 1e-20))
    return within_full_scale((wet * level).astype(np.float32))


def spec_augment(spect: np.ndarray, config: AugmentConfig, rng: np.random.Generator,
                 frames_per_second: float) -> np.ndarray:
    """Frequency and time masks on a (bins, frames) spectrogram, in place, filled with its mean
    (0 for normalised features). The number of time masks grows with the utterance
    (``time_masks_per_second``) and each is at most ``time_mask_fraction`` of it (Park et al.,
    "SpecAugment on large scale datasets", 2020), so short and long utterances lose a similar share."""
    bins, frames = spect.shape
    fill = spect.mean()
    for _ in range(config.freq_masks):
        width = int(rng.integers(0, min(config.freq_mask_bins, bins) + 1))
        start = int(rng.integers(0, bins - width + 1))
        spect[start:start + width] = fill
    count = int(round(config.time_masks_per_second * frames / frames_per_second))
    widest = min(config.time_mask_frames, int(config.time_mask_fraction * frames))
    for _ in range(count):
        width = int(rng.integers(0, widest + 1))
        start = int(rng.integers(0, frames - width + 1))
        spect[:, start:start + width] = fill
    return spect


class Augmenter:
    """Augmented features of one utterance (``features``), with its draws from ``rng(epoch, position)``;
    built in the main process (a bad noise folder fails there) and pickled into the reader's workers."""

    def __init__(self, config: AugmentConfig, feature_config: FeatureConfig, seed: int):
        self.config, self.feature_config, self.seed = config, feature_config, seed
        if config.vtlp > 0 and feature_config.scale is not Scale.MEL:
            raise ConfigError(f"VTLP warps the mel filters: it needs mel features, these are "
                             f"{feature_config.scale.value}")
        if config.noise_dir is not None and config.noise_prob > 0:
            load_noise(config.noise_dir, feature_config.sample_rate)  # a bad folder fails here, not in a worker

    def rng(self, epoch: int, position: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, position, UTTERANCE_STREAM])

    def waveform(self, samples: np.ndarray, speed: float, rng: np.random.Generator) -> np.ndarray:
        """Speed, pitch, volume, reverberation, noise and channel on int16 samples; float32 in [-1, 1]
        back. A transform that is off draws nothing (the other transforms' draws stay the same)."""
        config = self.config
        audio = perturb_speed(samples.astype(np.float32) / np.float32(INT16_SCALE), speed)
        if config.pitch_shift > 0:
            audio = shift_pitch(audio, rng.uniform(-config.pitch_shift, config.pitch_shift))
        if config.volume_db > 0:
            audio = audio * np.float32(10 ** (rng.uniform(-config.volume_db, config.volume_db) / 20))
        if config.reverb_prob > 0 and rng.random() < config.reverb_prob:
            audio = room_reverb(audio, rng, self.feature_config.sample_rate)
        if config.noise_prob > 0 and rng.random() < config.noise_prob:
            audio = mix_at_snr(audio, self._noise(rng, len(audio)), rng.uniform(*config.snr_db))
        if config.channel_prob > 0 and rng.random() < config.channel_prob:
            audio = random_channel(audio, rng, self.feature_config.sample_rate)
        return within_full_scale(audio)

    def _noise(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        if self.config.noise_dir is None:
            return coloured_noise(rng, num_samples)
        clips = load_noise(self.config.noise_dir, self.feature_config.sample_rate)
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(len(clip)))
        return np.resize(np.roll(clip, -start), num_samples)  # looped when shorter than the speech

    def features(self, samples: np.ndarray | None, spect: np.ndarray | None, speed: float,
                 rng: np.random.Generator) -> np.ndarray:
        """The augmented spectrogram from ``samples`` (when a waveform transform is on) or from the
        stored ``spect``."""
        if self.config.waveform:
            audio = self.waveform(samples, speed, rng)
            warp = rng.uniform(1 - self.config.vtlp, 1 + self.config.vtlp) if self.config.vtlp > 0 else 1.0
            spect = spectrogram(audio, self.feature_config, warp)
        frames_per_second = self.feature_config.sample_rate / self.feature_config.hop_length
        return spec_augment(spect, self.config, rng, frames_per_second)


def switch(config: AugmentConfig, *, everything: bool | None = None, speed: bool | None = None,
           volume: bool | None = None, noise: bool | None = None, spec_augment: bool | None = None,
           noise_dir: str | None = None, noise_prob: float | None = None, vtlp: float | None = None,
           channel_prob: float | None = None, pitch_shift: float | None = None,
           reverb_prob: float | None = None) -> AugmentConfig:
    """``config`` with transforms switched on (at ``STANDARD_AUGMENT``'s rates, unless already on)
    or off; None leaves a transform as it is. ``everything`` first, then each transform; a noise
    folder switches noise on."""
    standard, changes = STANDARD_AUGMENT, {}
    if everything is not None:
        config = (config if config.enabled else standard) if everything else AugmentConfig()
    if speed is not None:
        changes["speeds"] = (config.speeds or standard.speeds) if speed else ()
    if volume is not None:
        changes["volume_db"] = (config.volume_db or standard.volume_db) if volume else 0.0
    if noise_dir is not None:
        changes["noise_dir"], noise = str(Path(noise_dir).resolve()), True if noise is None else noise
    if noise is not None:
        changes["noise_prob"] = (config.noise_prob or standard.noise_prob) if noise else 0.0
    if noise_prob is not None:
        changes["noise_prob"] = noise_prob
    if vtlp is not None:
        changes["vtlp"] = vtlp
    if channel_prob is not None:
        changes["channel_prob"] = channel_prob
    if pitch_shift is not None:
        changes["pitch_shift"] = pitch_shift
    if reverb_prob is not None:
        changes["reverb_prob"] = reverb_prob
    if spec_augment is not None:
        on = spec_augment
        changes["freq_masks"] = (config.freq_masks or standard.freq_masks) if on else 0
        changes["time_masks_per_second"] = (config.time_masks_per_second or standard.time_masks_per_second) \
            if on else 0.0
    return dataclasses.replace(config, **changes)
