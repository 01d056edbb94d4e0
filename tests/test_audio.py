"""Audio: resampling (libsoxr) against what a resampler must do: no aliasing, no wrap-around."""
import numpy as np
import pytest
import soundfile

from ds2stream.data.audio import AudioError, read_audio, resample


def tone(frequency, rate, seconds, amplitude=10000.0):
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def magnitude_at(samples, frequency, rate):
    """Windowed spectrum magnitude at the bin nearest ``frequency``."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return spectrum[np.argmin(np.abs(np.fft.rfftfreq(len(samples), 1 / rate) - frequency))]


def test_a_tone_keeps_its_frequency_and_level_and_the_length_scales():
    out = resample(tone(3000, 44100, 2.0), 44100, 16000)
    assert len(out) == 32000
    expected = tone(3000, 16000, 2.0)
    np.testing.assert_allclose(magnitude_at(out, 3000, 16000), magnitude_at(expected, 3000, 16000), rtol=0.01)


def test_content_above_the_new_nyquist_is_removed_not_aliased():
    # 10 kHz at 44.1 kHz would fold to 6 kHz at 16 kHz; a band-limiting filter removes it.
    out = resample(tone(10000, 44100, 2.0), 44100, 16000)
    reference = magnitude_at(resample(tone(3000, 44100, 2.0), 44100, 16000), 3000, 16000)
    assert 20 * np.log10(magnitude_at(out, 6000, 16000) / reference) < -80


def test_the_end_of_a_file_never_wraps_into_its_start():
    clicks = np.zeros(44100 * 5, dtype=np.int16)
    clicks[-10:] = 20000  # the whole-signal FFT resampler put 30 % of this at the start
    out = resample(clicks, 44100, 16000)
    assert np.abs(out[:16000]).max() == 0 and np.abs(out[-100:]).max() > 1000


def test_speech_survives_a_round_trip_through_a_lower_rate(sample_flacs):
    samples, rate = read_audio(sample_flacs[0])
    up = resample(resample(samples, 16000, 8000), 8000, 16000)
    assert len(up) == len(samples)
    # FSDD was recorded at 8 kHz: nothing above 4 kHz, so 16 -> 8 -> 16 kHz loses almost nothing
    error = np.abs(up.astype(float) - samples).mean() / np.abs(samples.astype(float)).mean()
    assert error < 0.05


def test_a_truncated_wav_given_by_path_is_an_error_naming_it(tmp_path, sample_flacs):
    # libsndfile decodes what is there; the header's data size says what is missing. Paths are what
    # transcribe and the noise folder pass (shard passes bytes).
    samples, rate = read_audio(sample_flacs[0])
    whole = tmp_path / "whole.wav"
    soundfile.write(whole, samples, rate, subtype="PCM_16")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:-1000])
    assert np.array_equal(read_audio(whole)[0], samples)
    for source in (cut, str(cut), data[:-1000]):
        with pytest.raises(AudioError, match="truncated WAV \\(1000 bytes of its data chunk missing\\)"):
            read_audio(source)
