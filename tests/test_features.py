import threading

import numpy as np
import pytest

from ds2stream.data.audio import read_audio
from ds2stream.features import FeatureConfig, Window, spectrogram, spectrogram_reference

TOLERANCE = 1e-4
CONFIGS = [FeatureConfig(), FeatureConfig(normalize=False), FeatureConfig(window=Window.HANN)]


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
