import dataclasses
import json
import threading

import numpy as np
import pytest

from ds2stream.data.audio import read_audio
from ds2stream.errors import ConfigError
from ds2stream.features import (
    FeatureConfig,
    Normalize,
    Scale,
    Window,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    spectrogram,
    spectrogram_reference,
    vtlp_warp,
)

TOLERANCE = 1e-4
# The log of a mel energy is as exact as the energy: the float32 FFT's absolute error becomes a
# relative one in the quietest bands of a frame (measured: 1.1e-3 on the sample, a band at
# log -15 in a loud frame). 2e-3 is 0.2 % of the energy.
MEL_TOLERANCE = 2e-3
CONFIGS = [FeatureConfig(), FeatureConfig(normalize=False), FeatureConfig(window=Window.HANN)]
MEL = FeatureConfig(scale=Scale.MEL)
MEL_CONFIGS = [MEL, FeatureConfig(scale=Scale.MEL, normalize=Normalize.PER_BIN),
               FeatureConfig(scale=Scale.MEL, normalize=Normalize.NONE, n_mels=40),
               FeatureConfig(normalize=Normalize.PER_BIN)]


def test_kernel_matches_reference_on_real_speech(sample_flacs):
    assert len(sample_flacs) >= 10
    for path in sample_flacs:
        audio, rate = read_audio(path)
        assert rate == 16000
        for config in CONFIGS:
            kernel = spectrogram(audio, config)
            assert kernel.dtype == np.float32
            assert kernel.shape == (161, 1 + len(audio) // 160)
            assert np.abs(kernel - spectrogram_reference(audio, config)).max() <= TOLERANCE, path


# 161 is the shortest defined input; 2559 gives exactly 16 frames (one full kernel block).
@pytest.mark.parametrize("length", [161, 320, 321, 2559, 2560, 16000, 35 * 16000])
@pytest.mark.parametrize("config", CONFIGS, ids=["default", "raw", "hann"])
def test_kernel_matches_reference_on_random_signals(length, config):
    rng = np.random.default_rng(length)
    audio = (rng.uniform(-1, 1, length) * rng.uniform(0.01, 1)).astype(np.float32)
    kernel = spectrogram(audio, config)
    reference = spectrogram_reference(audio, config)
    assert kernel.shape == reference.shape == (161, 1 + length // 160)
    assert np.abs(kernel - reference).max() <= TOLERANCE


def test_kernel_matches_reference_on_every_block_remainder():
    rng = np.random.default_rng(7)
    for frames in range(1, 40):
        length = (frames - 1) * 160 + int(rng.integers(0, 160)) + (frames == 1) * 161
        audio = rng.standard_normal(length).astype(np.float32) * 0.1
        assert np.abs(spectrogram(audio) - spectrogram_reference(audio)).max() <= TOLERANCE, length


@pytest.mark.parametrize("length", [0, 1, 159, 160])
def test_audio_shorter_than_reflect_padding_is_a_clear_error(length):
    audio = np.zeros(length, dtype=np.float32)
    for compute in (spectrogram, spectrogram_reference):
        with pytest.raises(ValueError, match=f"audio has {length} samples.*at least 161"):
            compute(audio)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_is_rejected(bad):
    audio = np.zeros(1000, dtype=np.float32)
    audio[500] = bad
    for compute in (spectrogram, spectrogram_reference):
        with pytest.raises(ValueError, match="NaN or inf.*sample 500"):
            compute(audio)


def test_int16_is_scaled_by_32767():
    rng = np.random.default_rng(1)
    pcm = rng.integers(-32768, 32767, 4000).astype(np.int16)
    config = FeatureConfig(normalize=False)
    np.testing.assert_array_equal(
        spectrogram(pcm, config), spectrogram(pcm.astype(np.float32) / 32767, config)
    )


def test_silence_gives_zeros_not_nan():
    out = spectrogram(np.zeros(16000, dtype=np.int16))
    assert np.isfinite(out).all() and not out.any()


def test_normalised_output_has_zero_mean_unit_std(sample_flacs):
    audio, _ = read_audio(sample_flacs[0])
    out = spectrogram(audio).astype(np.float64)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4


def test_other_fft_sizes_match_reference():
    audio = np.random.default_rng(2).standard_normal(8000).astype(np.float32)
    for n_fft in (400, 512, 96):  # radices 4*2*5*5, 4*4*4*4, 4*4*3
        config = FeatureConfig(n_fft=n_fft, hop_length=n_fft // 2)
        assert np.abs(spectrogram(audio, config) - spectrogram_reference(audio, config)).max() <= TOLERANCE


def test_fft_size_with_other_prime_factors_is_refused():
    with pytest.raises(ValueError, match="product of 2, 3 and 5"):
        spectrogram(np.zeros(1000, dtype=np.float32), FeatureConfig(n_fft=14, hop_length=7))
    with pytest.raises(ValueError, match="n_fft must be even"):
        FeatureConfig(n_fft=321)


def test_kernel_gives_the_same_result_from_threads(sample_flacs):
    # The kernel releases the GIL: concurrent calls must not share work buffers.
    audios = [read_audio(p)[0] for p in sample_flacs]
    expected = [spectrogram(a) for a in audios]
    results = [None] * len(audios)

    def work(i):
        for _ in range(5):
            results[i] = spectrogram(audios[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(audios))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_config_round_trips_through_dict():
    config = FeatureConfig(window=Window.HANN, normalize=False)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown FeatureConfig keys"):
        FeatureConfig.from_dict({**config.to_dict(), "win_type": "hamming"})


def test_window_is_the_zoos_symmetric_hamming():
    window = FeatureConfig().window_array()
    assert window[0] == pytest.approx(0.08) and window[-1] == pytest.approx(0.08)
    assert window[159] == pytest.approx(window[160])


def test_mel_and_per_bin_kernel_matches_reference_on_real_speech(sample_flacs):
    for path in sample_flacs:
        audio, _ = read_audio(path)
        for config in MEL_CONFIGS:
            kernel = spectrogram(audio, config)
            assert kernel.shape == (config.num_bins, 1 + len(audio) // 160)
            assert np.abs(kernel - spectrogram_reference(audio, config)).max() <= MEL_TOLERANCE, (path, config)


@pytest.mark.parametrize("length", [161, 2559, 2560, 35 * 16000])
def test_mel_kernel_matches_reference_on_random_signals_and_a_warp(length):
    rng = np.random.default_rng(length)
    audio = (rng.uniform(-1, 1, length) * rng.uniform(0.01, 1)).astype(np.float32)
    for config in MEL_CONFIGS[:3]:
        for warp in (1.0, 0.9, 1.1):
            if warp != 1.0 and config.scale is not Scale.MEL:
                continue
            assert np.abs(spectrogram(audio, config, warp) - spectrogram_reference(audio, config, warp)).max() \
                <= MEL_TOLERANCE


def test_mel_filters_are_htk_triangles_that_sum_to_one_between_centres():
    weights = mel_filterbank(MEL).astype(np.float64)
    assert weights.shape == (80, 161) and weights.min() >= 0 and weights.max() <= 1
    # HTK's scale, worked by hand: 1000 Hz is 1127 ln(1 + 1000/700) = 999.99 mel.
    assert hz_to_mel(1000.0) == pytest.approx(999.99, abs=0.01)
    assert mel_to_hz(hz_to_mel(3210.0)) == pytest.approx(3210.0)
    corners = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 82))
    bins = np.arange(161) * 50.0
    inside = (bins >= corners[1]) & (bins <= corners[80])
    # Neighbouring triangles cross: between the first and the last centre every bin's weights sum to 1.
    np.testing.assert_allclose(weights.sum(axis=0)[inside], 1.0, atol=1e-6)
    assert not weights[:, bins > 8000].any() and not weights[:, bins < 20].any()
    # A filter centred on a bin has weight 1 there (filter 60's centre, rounded to the nearest bin).
    peak = int(np.argmax(weights[60]))
    assert abs(bins[peak] - corners[61]) <= 25.0


def test_too_many_mel_filters_for_the_fft_is_a_clear_error():
    with pytest.raises(ValueError, match="mel filter 0 of 200 covers no FFT bin"):
        spectrogram(np.zeros(4000, np.float32), FeatureConfig(scale=Scale.MEL, n_mels=200, f_min=0.0))
    with pytest.raises(ValueError, match="f_min < f_max"):
        FeatureConfig(scale=Scale.MEL, f_max=9000.0)


def test_vtlp_scales_low_frequencies_and_keeps_the_band_edges():
    # Jaitly & Hinton's warp, worked by hand at 16 kHz, boundary 4.8 kHz:
    for factor in (0.9, 1.1):
        boundary = 4800.0 * min(factor, 1.0) / factor
        assert vtlp_warp(1000.0, factor, 16000) == pytest.approx(1000.0 * factor)
        assert vtlp_warp(boundary, factor, 16000) == pytest.approx(boundary * factor)
        assert vtlp_warp(8000.0, factor, 16000) == pytest.approx(8000.0)
        assert vtlp_warp(0.0, factor, 16000) == 0.0
    assert vtlp_warp(6400.0, 1.1, 16000) == pytest.approx(8000 - (8000 - 4800) / (8000 - 4800 / 1.1) * 1600)
    # A warp of 1.1 moves every filter up: the spectrum read through them moves down.
    assert (np.argmax(mel_filterbank(MEL, 1.1), axis=1) >= np.argmax(mel_filterbank(MEL), axis=1)).all()


def test_vtlp_needs_mel_features():
    with pytest.raises(ValueError, match="VTLP warps the mel filters"):
        spectrogram(np.zeros(4000, np.float32), FeatureConfig(), warp=1.1)


def test_per_bin_normalisation_gives_each_row_zero_mean_unit_std(sample_flacs):
    audio, _ = read_audio(sample_flacs[0])
    out = spectrogram(audio, MEL_CONFIGS[1]).astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-4)


def test_per_bin_normalisation_removes_most_of_a_channel_tilt(sample_flacs):
    # What per-bin normalisation is for: a microphone's colouring is about a constant per band of
    # the log spectrum. A tilt of +4 dB per octave moves per-bin normalised mel features far less
    # than features normalised over the whole utterance, in the bands that hold the speech (the
    # sample was recorded at 8 kHz: above 4 kHz its bands are near the floor, where a gain is no
    # constant in the log).
    audio, _ = read_audio(sample_flacs[0])
    samples = audio.astype(np.float64) / 32767
    frequency = np.fft.rfftfreq(len(samples), 1 / 16000)
    gain = 10 ** (4 * np.log2(np.maximum(frequency, 50) / 1000) / 20)
    tilted = np.fft.irfft(np.fft.rfft(samples) * gain, n=len(samples))
    tilted = (tilted / np.abs(tilted).max() * 0.9).astype(np.float32)
    speech_bands = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 82))[1:-1] < 3800
    change = {}
    for normalize in (Normalize.UTTERANCE, Normalize.PER_BIN):
        config = FeatureConfig(scale=Scale.MEL, normalize=normalize)
        moved = np.abs(spectrogram(samples.astype(np.float32), config) - spectrogram(tilted, config))
        change[normalize] = moved[speech_bands].mean()  # measured: 0.254 and 0.059
    assert change[Normalize.PER_BIN] < 0.3 * change[Normalize.UTTERANCE], change


def test_a_dynamic_range_with_per_bin_mean_keeps_an_empty_band_near_zero(sample_flacs):
    # The sample was recorded at 8 kHz: above 4 kHz its mel rows hold only the resampler's residue,
    # some 70 dB under the speech and about as variable in the log. Per-bin normalisation scales it
    # to unit variance, as loud as the speech rows. A 60 dB dynamic range flattens it, and
    # per_bin_mean (one std over the utterance) keeps the flat rows near 0.
    audio, _ = read_audio(sample_flacs[0])
    empty = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 82))[1:-1] > 4400
    per_bin = spectrogram(audio, FeatureConfig(scale=Scale.MEL, normalize=Normalize.PER_BIN)).astype(np.float64)
    config = FeatureConfig(scale=Scale.MEL, normalize=Normalize.PER_BIN_MEAN, dynamic_range_db=60.0)
    out = spectrogram(audio, config).astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    assert out.std() == pytest.approx(1.0, abs=1e-4)
    assert per_bin[empty].std() == pytest.approx(1.0, abs=1e-3)
    assert out[empty].std() < 0.4 * out[~empty].std(), (out[empty].std(), out[~empty].std())  # measured: 0.35, 1.11
    np.testing.assert_allclose(out, spectrogram_reference(audio, config), atol=MEL_TOLERANCE)
    # the floor alone, then per-bin normalisation: the same rule in the kernel's path and numpy's
    floored = FeatureConfig(scale=Scale.MEL, normalize=Normalize.PER_BIN, dynamic_range_db=60.0)
    np.testing.assert_allclose(spectrogram(audio, floored), spectrogram_reference(audio, floored), atol=MEL_TOLERANCE)
    assert np.isfinite(spectrogram(np.zeros(16000, dtype=np.int16), config)).all()
    assert not config.normalize.causal and FeatureConfig.from_dict(config.to_dict()) == config
    for bad in ({"dynamic_range_db": 60.0}, {"scale": Scale.MEL, "dynamic_range_db": 0.0},
                {"scale": Scale.MEL, "dynamic_range_db": 60.0, "normalize": Normalize.SLIDING}):
        with pytest.raises(ConfigError, match="dynamic_range_db"):
            FeatureConfig(**bad)


def test_silent_mel_features_are_finite():
    for config in MEL_CONFIGS:
        out = spectrogram(np.zeros(16000, dtype=np.int16), config)
        assert np.isfinite(out).all()


def test_configs_written_before_mel_read_back_as_the_same_features():
    # Shard sets and checkpoints of earlier versions say normalize true/false and have no scale.
    old = {"sample_rate": 16000, "n_fft": 320, "hop_length": 160, "window": "hamming", "normalize": True}
    assert FeatureConfig.from_dict(old) == FeatureConfig()
    assert FeatureConfig.from_dict({**old, "normalize": False}).normalize is Normalize.NONE
    assert FeatureConfig.from_dict(MEL_CONFIGS[1].to_dict()) == MEL_CONFIGS[1]


def test_global_statistics_are_every_frames_mean_and_std_per_row_and_normalise_the_set(sample_test_shards):
    from ds2stream.pipeline import ShardSet, with_global_statistics

    config = with_global_statistics(FeatureConfig(scale=Scale.MEL, normalize=Normalize.GLOBAL), sample_test_shards)
    raw = ShardSet(sample_test_shards, FeatureConfig(scale=Scale.MEL, normalize=Normalize.NONE))
    frames = np.concatenate([raw.features(i)[0] for i in range(len(raw))], axis=1).astype(np.float64)
    assert frames.shape[1] == raw.frames.sum() and len(raw) == 300  # every frame of every recording
    np.testing.assert_allclose(config.global_mean, frames.mean(axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(config.global_std, frames.std(axis=1), rtol=1e-6)
    normalised = ShardSet(sample_test_shards, config)
    frames = np.concatenate([normalised.features(i)[0] for i in range(len(normalised))], axis=1)
    assert np.abs(frames.mean(axis=1)).max() < 1e-3 and np.abs(frames.std(axis=1) - 1).max() < 1e-3
    # Per utterance the rows keep the recording's own level, which per-row normalisation removes.
    first = normalised.features(0)[0]
    assert np.abs(first.mean(axis=1)).max() > 0.1
    assert np.abs(first - spectrogram_reference(raw.samples(0)[0], config)).max() < MEL_TOLERANCE
    # The config carries them through a checkpoint's dict and stays hashable (the kernel plan's cache key).
    again = FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and hash(again) == hash(config)


def test_global_statistics_are_checked_and_their_absence_is_named():
    mel_global = FeatureConfig(scale=Scale.MEL, normalize=Normalize.GLOBAL)
    with pytest.raises(ConfigError, match="--feature-norm global"):
        spectrogram(np.zeros(16000, np.int16), mel_global)
    with pytest.raises(ConfigError, match="for normalize 'global', not 'per_bin'"):
        FeatureConfig(scale=Scale.MEL, normalize=Normalize.PER_BIN, global_mean=(0.0,) * 80, global_std=(1.0,) * 80)
    with pytest.raises(ConfigError, match="global_mean has 40 values; the features have 80 rows"):
        dataclasses.replace(mel_global, global_mean=(0.0,) * 40, global_std=(1.0,) * 80)
    with pytest.raises(ConfigError, match="positive"):
        dataclasses.replace(mel_global, global_mean=(0.0,) * 80, global_std=(1.0,) * 79 + (0.0,))
    with pytest.raises(ConfigError, match="both"):
        dataclasses.replace(mel_global, global_mean=(0.0,) * 80)
    # Configs without statistics write no statistics keys: they read as before in earlier versions.
    assert "global_mean" not in MEL.to_dict() and "global_mean" not in mel_global.to_dict()
