"""CPU-seconds per hour of audio, on one thread, for three ways to compute the DS2 features.

(a) the native kernel (ds2stream.features.spectrogram),
(b) the vectorised numpy reference (ds2stream.features.spectrogram_reference),
(c) the zoo's way: per utterance librosa.stft + librosa.magphase (the phase is computed and
    thrown away), log1p, mean/std normalisation.

All three run on the same audio in one run: real speech from the bundled sample, concatenated
into utterances of LibriSpeech's typical length (12-17 s). Needs the `bench` extra (librosa).

    python bench/features.py [--minutes 6] [--repeats 3]
"""
import os

# One thread for every library, set before numpy is imported: the figures are per core.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import harness  # noqa: E402
import numpy as np  # noqa: E402

from ds2stream.data import SAMPLE_DIR  # noqa: E402
from ds2stream.data.audio import read_audio  # noqa: E402
from ds2stream.features import FeatureConfig, spectrogram, spectrogram_reference  # noqa: E402


def librosa_features(audio, config):
    """The zoo's feature code path (src/dataset.py), with its window made the configured one."""
    import librosa

    samples = audio.astype(np.float32) / 32767
    stft = librosa.stft(
        samples, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.n_fft,
        window=config.window_array(), center=True, pad_mode="reflect",
    )
    magnitude, _phase = librosa.magphase(stft)
    spect = np.log1p(magnitude)
    return (spect - spect.mean()) / spect.std()


def long_utterances(minutes: float, rng) -> list[np.ndarray]:
    clips = [read_audio(p)[0] for p in sorted(SAMPLE_DIR.glob("*/*/*/*.flac"))]
    utterances, total = [], 0
    while total < minutes * 60 * 16000:
        target = int(rng.uniform(12, 17) * 16000)
        parts, n = [], 0
        while n < target:
            clip = clips[int(rng.integers(len(clips)))]
            parts.append(clip)
            n += len(clip)
        utterances.append(np.concatenate(parts)[:target])
        total += target
    return utterances


def cpu_seconds_per_hour(compute, utterances, config, repeats):
    hours = sum(len(u) for u in utterances) / 16000 / 3600
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for audio in utterances:
            compute(audio, config)
        best = min(best, time.process_time() - start)
    return best / hours


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="audio per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="the best of this many runs counts")
    parser.add_argument("--out", type=Path, default=Path("bench/out/features.json"))
    args = parser.parse_args()

    config = FeatureConfig()
    utterances = long_utterances(args.minutes, np.random.default_rng(0))
    ways = {
        "(a) native kernel": spectrogram,
        "(b) numpy reference": spectrogram_reference,
        "(c) zoo: librosa stft+magphase": librosa_features,
    }
    for compute in ways.values():  # warm-up: plans, imports, numba caches
        compute(utterances[0], config)
    results = {name: cpu_seconds_per_hour(fn, utterances, config, args.repeats) for name, fn in ways.items()}

    print(f"{len(utterances)} utterances, {args.minutes:.1f} min of real speech, one thread, "
          f"best of {args.repeats}")
    print(f"{'way':34s} {'CPU-s per audio hour':>22s}")
    for name, value in results.items():
        print(f"{name:34s} {value:22.3f}")
    kernel = results["(a) native kernel"]
    print(f"kernel vs numpy reference: {results['(b) numpy reference'] / kernel:.1f}x faster")
    print(f"kernel vs zoo (librosa):   {results['(c) zoo: librosa stft+magphase'] / kernel:.1f}x faster")
    harness.save(args.out, {"utterances": len(utterances), "minutes": args.minutes, "repeats": args.repeats,
                            "cpu_seconds_per_audio_hour": results})


if __name__ == "__main__":
    main()
