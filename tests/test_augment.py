"""Augmentation in the reader: speed, volume, reverberation, noise, SpecAugment; planned lengths; determinism."""
import dataclasses
import json

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.data.audio import read_audio
from ds2stream.features import FeatureConfig, Normalize, Scale, spectrogram
from ds2stream.pipeline import STANDARD_AUGMENT, AugmentConfig, Augmenter, BatchSampler, EpochIterator, ShardSet
from ds2stream.pipeline.augment import (
    mix_at_snr,
    perturb_speed,
    random_channel,
    room_response,
    room_reverb,
    shift_pitch,
    spec_augment,
    speed_samples,
    stretch_time,
    switch,
)
from ds2stream.presets import PRESETS
from ds2stream.training.plan import make_source

TINY = PRESETS["tiny"]
#: Every waveform transform a linear spectrogram allows (VTLP needs mel features), and SpecAugment.
AUGMENTED = dataclasses.replace(TINY.train, max_frames=2500, num_buckets=3,
                                augment=dataclasses.replace(STANDARD_AUGMENT, pitch_shift=2.0, channel_prob=0.5,
                                                            reverb_prob=0.5))
FC = FeatureConfig()
MEL = FeatureConfig(scale=Scale.MEL, normalize=Normalize.PER_BIN)


@pytest.fixture(scope="module")
def shard_set(sample_test_shards):
    return ShardSet(sample_test_shards)


@pytest.fixture(scope="module")
def speech(sample_flacs):
    """Four real recordings joined: ~2 s of speech as float in [-1, 1]."""
    samples = np.concatenate([read_audio(path)[0] for path in sample_flacs[:4]])
    return samples.astype(np.float32) / 32767


def dominant_hz(audio, rate=16000):
    return np.argmax(np.abs(np.fft.rfft(audio))) * rate / len(audio)


# ---------------------------------------------------------------- waveform transforms

@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_and_pitch_together(speech, factor):
    out = perturb_speed(speech, factor)
    assert len(out) == speed_samples(len(speech), factor) == round(len(speech) / factor)
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    assert dominant_hz(perturb_speed(tone, factor)) == pytest.approx(440 * factor, abs=2)
    # Played back at the other speed it is the same speech again (a resampling, not a time stretch).
    back = perturb_speed(out, 1 / factor)[:len(speech)]
    middle = slice(1000, len(speech) - 1000)
    assert np.corrcoef(back[middle], speech[middle])[0, 1] > 0.99


def pitch_hz(audio, rate=16000):
    """The voice's median fundamental frequency: per 40-ms voiced frame, the shortest period between
    60 and 400 Hz whose autocorrelation is within 15 % of the highest (a multiple of the period
    correlates as well: the shortest is the voice's)."""
    frame = int(0.04 * rate)
    frames = audio[:len(audio) // frame * frame].reshape(-1, frame).astype(np.float64)
    energy = (frames ** 2).mean(axis=1)
    low, high = rate // 400, rate // 60
    found = []
    for f in frames[energy > 0.1 * energy.max()]:
        f = f - f.mean()
        correlation = np.fft.irfft(np.abs(np.fft.rfft(f, 2 * frame)) ** 2)[:frame]
        correlation = correlation[low:high] / (frame - np.arange(low, high))  # per overlapping sample
        peaks = np.flatnonzero((correlation[1:-1] >= correlation[:-2]) & (correlation[1:-1] >= correlation[2:])) + 1
        if len(peaks):
            best = correlation[peaks].max()
            found.append(rate / (low + peaks[correlation[peaks] >= 0.85 * best][0]))
    return float(np.median(found))


def envelope(audio, hop=320):
    return np.sqrt((audio[:len(audio) // hop * hop].reshape(-1, hop).astype(np.float64) ** 2).mean(axis=1))


def test_a_time_stretch_keeps_the_pitch_and_a_pitch_shift_keeps_the_tempo(speech, sample_flacs):
    # Stretched to its own length, a recording comes back (to float32 precision: -66 dB).
    np.testing.assert_allclose(stretch_time(speech, len(speech)), speech, atol=5e-4)
    recordings = [read_audio(path)[0].astype(np.float32) / 32767 for path in sample_flacs[:5]]
    # Pitch, per recording (the estimate's own noise is a few %, and it can miss by an octave on
    # one: the median of five); a semitone is 6 %, the changes below 16 % and more.
    slower = [stretch_time(r, int(len(r) * 1.25)) for r in recordings]
    assert all(len(s) == int(len(r) * 1.25) for s, r in zip(slower, recordings))
    assert np.median([pitch_hz(s) / pitch_hz(r) for s, r in zip(slower, recordings)]) == pytest.approx(1, rel=0.06)
    for semitones in (-3.0, 4.0):
        shifted = [shift_pitch(r, semitones) for r in recordings]
        assert all(len(s) == len(r) and np.abs(s).max() <= 1.0 for s, r in zip(shifted, recordings))
        ratio = np.median([pitch_hz(s) / pitch_hz(r) for s, r in zip(shifted, recordings)])
        assert ratio == pytest.approx(2 ** (semitones / 12), rel=0.06)
        # The words stay where they were: the loudness follows the original's, frame by frame,
        # unlike the same pitch change by speed perturbation (which moves them too).
        out = shift_pitch(speech, semitones)
        kept = np.corrcoef(envelope(out), envelope(speech))[0, 1]
        sped = perturb_speed(speech, 2 ** (semitones / 12))
        sped = np.pad(sped, (0, max(0, len(speech) - len(sped))))[:len(speech)]
        assert kept > 0.85 and kept > np.corrcoef(envelope(sped), envelope(speech))[0, 1] + 0.3, kept


def test_noise_is_mixed_at_the_snr_asked_and_a_mix_never_clips(speech):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(speech)).astype(np.float32)
    quiet = speech * 0.1
    for snr in (0.0, 10.0, 25.0):
        mixed = mix_at_snr(quiet, noise, snr)
        added = mixed - quiet
        measured = 10 * np.log10(np.mean(quiet.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
        assert measured == pytest.approx(snr, abs=0.01)
    loud = speech / np.abs(speech).max()  # at full scale: any noise would clip
    mixed = mix_at_snr(loud, noise, 0.0)
    assert np.abs(mixed).max() <= 1.0
    augmenter = Augmenter(AugmentConfig(volume_db=20.0, noise_prob=1.0, snr_db=(0.0, 0.0)), FC, seed=0)
    for utterance in range(20):  # gains up to +20 dB on full-scale speech, then noise at 0 dB
        out = augmenter.waveform((loud * 32767).astype(np.int16), 1.0, augmenter.rng(0, utterance))
        assert np.abs(out).max() <= 1.0 and np.isfinite(out).all()


def test_noise_comes_from_the_folder_given_at_any_rate(speech, tmp_path, sample_flacs):
    folder = tmp_path / "noise"
    folder.mkdir()
    hum = (0.3 * np.sin(2 * np.pi * 50 * np.arange(4000) / 8000)).astype(np.float32)  # 0.5 s of 50 Hz, 8 kHz
    soundfile.write(folder / "hum.wav", hum, 8000)
    augmenter = Augmenter(AugmentConfig(noise_prob=1.0, snr_db=(0.0, 0.0), noise_dir=str(folder)), FC, seed=0)
    samples = (speech * 32767).astype(np.int16)
    added = augmenter.waveform(samples, 1.0, augmenter.rng(0, 0)) - speech
    assert dominant_hz(added) == pytest.approx(50, abs=1)  # resampled to 16 kHz, looped over 2 s
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "broken.flac").write_bytes(b"fLaC not really")
    with pytest.raises(ValueError, match="broken.flac"):  # when the run starts, not in a reader worker
        Augmenter(AugmentConfig(noise_prob=1.0, noise_dir=str(broken)), FC, seed=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"noise folder {empty}: no audio files"):
        Augmenter(AugmentConfig(noise_prob=1.0, noise_dir=str(empty)), FC, seed=0)
    with pytest.raises(ValueError, match="does not exist"):
        AugmentConfig(noise_dir=str(tmp_path / "missing"))
    silent = tmp_path / "silent"
    silent.mkdir()
    soundfile.write(silent / "hum.wav", hum, 8000)
    soundfile.write(silent / "quiet.wav", np.zeros(8000, np.float32), 8000)
    with pytest.raises(ValueError, match="quiet.wav is silent"):  # it would mix nothing, without a word
        Augmenter(AugmentConfig(noise_prob=1.0, noise_dir=str(silent)), FC, seed=0)


def test_a_noise_folder_larger_than_workers_should_hold_is_refused_from_its_headers(tmp_path, monkeypatch):
    from ds2stream.pipeline import augment

    folder = tmp_path / "noise"
    folder.mkdir()
    for i in range(3):
        soundfile.write(folder / f"n{i}.wav", np.full(16000, 0.1, np.float32), 16000)
    monkeypatch.setattr(augment, "MAX_NOISE_SECONDS", 2.0)  # the real limit is an hour: 3 s of files here
    with pytest.raises(ValueError, match=f"noise folder {folder}: 3 s of audio.*at most 2 s"):
        Augmenter(AugmentConfig(noise_prob=1.0, noise_dir=str(folder)), FC, seed=0)


def test_spec_augment_fills_masks_with_the_mean_and_masks_long_utterances_more(speech):
    config = AugmentConfig(freq_masks=2, time_masks_per_second=0.5)
    short = spectrogram(speech[:16000], FC)
    long = spectrogram(np.tile(speech, 10), FC)  # ~20 s
    shares = {}
    for name, spect in (("short", short), ("long", long)):
        masked_frames = []
        for seed in range(30):
            out = spec_augment(spect.copy(), config, np.random.default_rng(seed), 100.0)
            assert out.shape == spect.shape
            changed = out != spect
            assert np.allclose(out[changed], spect.mean(), atol=1e-6)  # 0 after normalisation
            columns = changed.all(axis=0)
            count = round(0.5 * spect.shape[1] / 100)
            assert columns.sum() <= count * min(40, int(0.04 * spect.shape[1]))
            rows = changed.all(axis=1)
            assert rows.sum() <= 2 * 27
            masked_frames.append(columns.sum())
        shares[name] = np.mean(masked_frames)
    # 1 s: one mask of at most 4 frames; 20 s: ten of up to 40. A similar share of each, not the same count.
    assert 0 < shares["short"] and shares["long"] > 5 * shares["short"]
    assert shares["long"] / long.shape[1] < 0.25 and shares["short"] / short.shape[1] < 0.25


# ---------------------------------------------------------------- plans with perturbed lengths

def test_speed_perturbed_plans_bucket_by_the_new_length_and_fall_back_when_ctc_cannot_fit():
    rng = np.random.default_rng(0)
    frames = rng.integers(100, 1500, 2000)
    chars = frames // 5
    chars[:50] = frames[:50] // 2 - 2  # fit at 1.0 and 0.9, not at 1.1 (output = frames // 2)
    speeds = (0.9, 1.0, 1.1)
    speed_frames = [np.rint(frames / f).astype(np.int64) for f in speeds]
    sampler = BatchSampler(frames, chars, np.arange(2000) // 100, max_frames=8000, num_buckets=8,
                           output_lengths=lambda f: np.asarray(f) // 2, speeds=speeds, speed_frames=speed_frames)
    assert sum(sampler.dropped.values()) == 0
    shapes = set()
    for epoch in range(4):
        plan = sampler.plan(epoch)
        lengths, _, factors = sampler.epoch_lengths(epoch)
        real = np.concatenate([rows[mask > 0] for rows, mask in zip(plan.rows, plan.masks)])
        assert sorted(real) == list(range(2000))  # every utterance once
        for rows, batch_frames, label_pad, row_speeds in zip(plan.rows, plan.frames, plan.label_pad, plan.speeds):
            assert batch_frames >= lengths[rows].max() and label_pad >= chars[rows].max()
            assert np.array_equal(row_speeds, factors[rows])
            shapes.add((len(rows), int(batch_frames)))
        assert set(np.unique(factors[50:])) == set(speeds)
        assert (factors[:50] != 1.1).all()  # 1.1 falls back to 1.0 where the transcript would not fit
        assert (lengths // 2 >= chars).all()
    assert len(shapes) <= 8  # the same buckets every epoch: one graph each
    assert not np.array_equal(sampler.epoch_lengths(1)[2], sampler.epoch_lengths(2)[2])
    ranks = [BatchSampler(frames, chars, np.arange(2000) // 100, max_frames=8000, num_buckets=8, rank=r, world_size=2,
                          output_lengths=lambda f: np.asarray(f) // 2, speeds=speeds, speed_frames=speed_frames)
             for r in range(2)]
    for rank in ranks:  # the ranks agree on every utterance's factor
        assert np.array_equal(rank.epoch_lengths(3)[2], sampler.epoch_lengths(3)[2])


def test_a_random_channel_colours_and_band_limits_without_clipping(speech):
    loud = speech / np.abs(speech).max()
    spectrum = np.abs(np.fft.rfft(loud)) ** 2
    frequency = np.fft.rfftfreq(len(loud), 1 / 16000)
    limited = 0
    for seed in range(12):
        out = random_channel(loud, np.random.default_rng(seed), 16000)
        assert len(out) == len(loud) and np.abs(out).max() <= 1.0
        np.testing.assert_array_equal(out, random_channel(loud, np.random.default_rng(seed), 16000))
        ratio = np.abs(np.fft.rfft(out)) ** 2 / np.maximum(spectrum, 1e-12)
        low = ratio[(frequency > 20) & (frequency < 40)].mean()
        high = ratio[(frequency > 1000) & (frequency < 1200)].mean()
        limited += low < 1e-3 * high  # a high-pass at 50-400 Hz takes 20-40 Hz down by 40 dB or more
        assert not np.allclose(out, loud)
    assert 2 <= limited <= 10  # about half the utterances are band-limited


def test_a_simulated_room_decays_60_db_in_its_rt60_after_its_direct_path():
    for rt60, drr_db in ((0.3, 0.0), (0.7, 10.0)):
        response = room_response(np.random.default_rng(1), 16000, rt60, drr_db)
        tail = response[1:] ** 2
        assert response[0] == 1.0 and 10 * np.log10(1 / tail.sum()) == pytest.approx(drr_db)
        # Schroeder's backward integral: the energy still to come, fitted from -5 to -25 dB (T20)
        remaining = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / tail.sum())
        fit = (remaining <= -5) & (remaining >= -25)
        slope = np.polyfit(np.arange(1, len(response))[fit] / 16000, remaining[fit], 1)[0]
        assert -60 / slope == pytest.approx(rt60, rel=0.1)


def test_reverberation_keeps_length_and_level_and_follows_a_sound_never_precedes_it(speech):
    loud = speech / np.abs(speech).max() / 2
    for seed in range(4):
        out = room_reverb(loud, np.random.default_rng(seed), 16000)
        assert len(out) == len(loud) and np.abs(out).max() <= 1.0 and not np.allclose(out, loud)
        np.testing.assert_array_equal(out, room_reverb(loud, np.random.default_rng(seed), 16000))
        rms = np.sqrt(np.mean(out.astype(np.float64) ** 2)) / np.sqrt(np.mean(loud.astype(np.float64) ** 2))
        assert rms == pytest.approx(1.0, rel=1e-3) or np.abs(out).max() == pytest.approx(1.0)
    click = np.zeros(16000, np.float32)
    click[4000] = 0.5
    out = room_reverb(click, np.random.default_rng(0), 16000)
    assert np.abs(out[:4000]).max() < 1e-6 * np.abs(out).max()  # nothing before the sound (FFT round-off)
    assert np.sum(out[4100:8000] ** 2) > 1e-3 * np.sum(out ** 2)  # the room rings on after it


def test_vtlp_needs_mel_features_and_its_warp_changes_the_features(shard_set):
    with pytest.raises(ValueError, match="VTLP warps the mel filters"):
        Augmenter(AugmentConfig(vtlp=0.1), FC, seed=0)
    samples, _ = shard_set.samples(0)
    warped = Augmenter(AugmentConfig(vtlp=0.1), MEL, seed=0)
    plain = Augmenter(AugmentConfig(volume_db=1e-9), MEL, seed=0)
    one = warped.features(samples, None, 1.0, warped.rng(1, 0))
    assert np.array_equal(one, warped.features(samples, None, 1.0, warped.rng(1, 0)))
    assert not np.allclose(one, plain.features(samples, None, 1.0, plain.rng(1, 0)), atol=1e-3)
    assert not np.array_equal(one, warped.features(samples, None, 1.0, warped.rng(2, 0)))


# ---------------------------------------------------------------- determinism through the reader

def test_augmented_batches_depend_only_on_seed_epoch_and_utterance(shard_set):
    model = dataclasses.replace(TINY.model, num_bins=161)
    one = make_source(shard_set, model, AUGMENTED)
    again = make_source(shard_set, model, AUGMENTED)
    plain = make_source(shard_set, model, dataclasses.replace(AUGMENTED, augment=AugmentConfig()))
    one.set_epoch(1)
    again.set_epoch(1)
    through_workers = [batch for _, batch in EpochIterator(again, epoch=1, num_workers=2)]
    for step in (0, 5):
        batch = one.batch(step)
        assert np.array_equal(batch[0], through_workers[step]["features"])  # any worker process, same arrays
        planned = one.sampler.epoch_lengths(1)[0][batch[6]]
        assert np.array_equal(batch[1], planned)  # the lengths the plan bucketed by
    one.set_epoch(2)
    assert not np.array_equal(one.batch(0)[0], through_workers[0]["features"])
    # One utterance, seen by rank 1 of 2: the same features a single process gives it in that epoch.
    rank1 = make_source(shard_set, model, AUGMENTED, rank=1, world_size=2)
    rank1.set_epoch(1)
    features, lengths, *_, mask, rows = rank1.batch(0)
    position, speed = int(rows[0]), float(rank1.plan.speeds[0][0])
    one.set_epoch(1)
    alone, _ = one.utterance(position, speed)
    assert np.array_equal(features[0, 0, :, :lengths[0]], alone)
    clean, _ = plain.utterance(position, 1.0)
    assert alone.shape != clean.shape or not np.array_equal(alone, clean)


def test_switches_and_the_cli_record_augmentation_in_the_run(shard_set, tmp_path):
    assert not PRESETS["tiny"].train.augment.enabled and not PRESETS["zoo"].train.augment.enabled
    assert all(PRESETS[name].train.augment == STANDARD_AUGMENT for name in ("small", "fast", "lean"))
    off = AugmentConfig()
    assert switch(off, everything=True) == STANDARD_AUGMENT and switch(STANDARD_AUGMENT, everything=False) == off
    only_speed = switch(off, speed=True)
    assert only_speed.speeds == STANDARD_AUGMENT.speeds and only_speed.enabled and only_speed.freq_masks == 0
    folder = tmp_path / "noise"
    folder.mkdir()
    soundfile.write(folder / "n.wav", np.zeros(800, np.float32) + 0.1, 16000)
    result = CliRunner().invoke(cli, ["train", "--shards", str(shard_set.dir), "--out", str(tmp_path / "run"),
                                      "--preset", "tiny", "--augment", "--no-spec-augment", "--noise", str(folder),
                                      "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]["augment"]
    assert saved["speeds"] == [0.9, 1.0, 1.1] and saved["noise_dir"] == str(folder)
    assert saved["freq_masks"] == 0 and saved["noise_prob"] == STANDARD_AUGMENT.noise_prob
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run"), "--no-speed-perturb",
                                      "--max-steps", "2"])
    assert result.exit_code == 1 and "speeds [0.9, 1.0, 1.1] -> []" in result.output


def test_a_dynamic_range_from_the_cli_trains_evaluates_and_stays_the_runs(sample_test_shards, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--shards", str(sample_test_shards), "--out", str(run),
                                      "--preset", "tiny", "--feature-scale", "mel", "--feature-norm", "per_bin_mean",
                                      "--feature-range-db", "60", "--max-frames", "2500", "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    features = json.loads((run / "config.json").read_text())["feature_config"]
    assert (features["normalize"], features["dynamic_range_db"]) == ("per_bin_mean", 60.0)
    result = CliRunner().invoke(cli, ["eval", "--shards", str(sample_test_shards),
                                      "--model", str(run / "checkpoints" / "step-00000002.ckpt")])
    assert result.exit_code == 0 and "300 utterances" in result.output, result.output
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--feature-range-db", "50", "--max-steps", "3"])
    assert result.exit_code == 1 and "dynamic_range_db 60.0 -> 50.0" in result.output, result.output


def test_mel_vtlp_channel_and_pitch_from_the_cli_train_evaluate_and_stay_the_runs(sample_test_shards, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--shards", str(sample_test_shards), "--out", str(run),
                                      "--preset", "tiny",
                                      "--feature-scale", "mel", "--feature-norm", "per_bin", "--vtlp", "0.1",
                                      "--channel-prob", "0.5", "--reverb-prob", "0.5", "--pitch-shift", "2",
                                      "--max-frames", "2500",
                                      "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert saved["feature_config"]["scale"] == "mel" and saved["feature_config"]["normalize"] == "per_bin"
    assert saved["model_config"]["num_bins"] == 80
    assert saved["train_config"]["augment"]["vtlp"] == 0.1 and saved["train_config"]["augment"]["channel_prob"] == 0.5
    assert saved["train_config"]["augment"]["pitch_shift"] == 2.0
    assert saved["train_config"]["augment"]["reverb_prob"] == 0.5
    checkpoint = run / "checkpoints" / "step-00000002.ckpt"
    # eval reads the (linear-sharded) test set with the checkpoint's mel features.
    result = CliRunner().invoke(cli, ["eval", "--shards", str(sample_test_shards), "--model", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert "300 utterances" in result.output
    # The features are the run's: a resume that asks for others is refused.
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--feature-scale", "linear", "--vtlp", "0",
                                      "--max-steps", "3"])
    assert result.exit_code == 1, result.output
    assert "trained on other features than this run computes (scale 'mel' -> 'linear')" in result.output
