"""Per-step and per-epoch training time of DeepSpeech2: the seed's pipeline against ds2stream, one run.

The seed's question: one epoch of LibriSpeech train-clean-100 takes about 50 hours on a CPU
server; how can it be faster? Each configuration runs in its own process (its own MindSpore, its
own peak memory) on the same machine, one after the other:

  (a)  the seed's pipeline as the seed ran it: wav files from a zoo CSV manifest, per-utterance
       decoding and librosa STFT + magphase in a Python generator, every utterance cropped or
       padded to 1250 frames, labels padded to 350, batch 1, the zoo model, oneDNN left to pick
       its kernels (on an AVX-512 CPU: a reference convolution);
  (a2) (a) with oneDNN capped at AVX2 (what ds2stream sets): the first lever;
  (b)  (a) at batch 8, what a zoo user gets by changing one number; (b2) with AVX2;
  (c)  ds2stream: shards, the bucketed reader (whole utterances, never cropped), the zoo preset,
       a budget of 10,000 padded frames per batch (= (b)'s 8 x 1250: the same activation memory);
  (d)  (c) with the `fast` preset (4x time subsampling, 3 BiLSTM-512);
  and eval: seconds per audio hour of the zoo's eval (every batch padded to 3500 frames, batch 1)
  against ds2stream's bucketed eval, forward passes only.

Reported per configuration: step time (median, p90; the first step, which compiles, apart), data
wait per step, padding, audio-seconds trained per wall-second, achieved GFLOP/s against the
machine's fp32 peak, peak memory, and the projected epoch time for train-clean-100 (28,539
utterances, 100.6 h) and LibriSpeech 960 h.

How the projection is made: the epoch's batches are planned from train-clean-100's length
distribution (28,539 lengths, tools' profile): for (a)/(b) every batch has the same shape, so
epoch = batches x median step; for (c)/(d) the sampler gives the number of batches of every bucket
shape, a few shapes are measured (short, middle and long buckets), the step time of every shape is
interpolated linearly in its FLOPs from those, and epoch = sum over shapes of batches x step time.
960 h scales train-clean-100 by hours. Audio for the measured steps: a corpus made from the bundled
real speech with train-clean-100's lengths (speed does not depend on content).

    python bench/step.py [--steps 3] [--out bench/out/step.json]     (needs the bench extra: librosa)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from ds2stream.pipeline import ZOO_EVAL_FRAMES
from ds2stream.pipeline import ZOO_TRAIN_FRAMES as ZOO_FRAMES

PEAK_GFLOPS = 157.0  # this machine: 2 cores x 2.45 GHz x 32 fp32 FLOP/cycle (AVX2 FMA)
TRAIN_CLEAN_100 = {"utterances": 28539, "hours": 100.6}
LIBRISPEECH_960_HOURS = 960.9
ZOO_LABELS = 350  # the zoo pads every transcript to 350 labels
BUDGET = 8 * ZOO_FRAMES


# ---------------------------------------------------------------- FLOPs of a padded batch

def train_flops(config, rows: int, frames: int) -> float:
    """FLOPs of one training step (forward + backward = 3 x forward) of a padded batch."""
    return 3 * forward_flops(config, rows, frames)


def forward_flops(config, rows: int, frames: int) -> float:
    flops, channels, bins, time_steps = 0.0, 1, config.num_bins, frames
    for layer in config.conv:
        bins, time_steps = layer.out_size(bins, 0), layer.out_size(time_steps, 1)
        flops += 2 * rows * layer.channels * bins * time_steps * channels * layer.kernel[0] * layer.kernel[1]
        channels = layer.channels
    gates = 4 if config.rnn_type.value == "lstm" else 3
    size = config.rnn_input_size
    for _ in range(config.rnn_layers):
        flops += 2 * 2 * rows * time_steps * gates * config.rnn_hidden * (size + config.rnn_hidden)
        size = config.rnn_hidden
    return flops + 2 * rows * time_steps * config.rnn_hidden * config.num_classes


# ---------------------------------------------------------------- worker: one configuration

def summarise(step_seconds, data_seconds, real_frames, padded_frames, flops) -> dict:
    times = np.array(step_seconds)
    return {"step_median": float(np.median(times)), "step_p90": float(np.percentile(times, 90)),
            "data_wait_per_step": float(np.mean(data_seconds)), "real_frames": int(real_frames),
            "padded_frames": int(padded_frames), "flops": float(flops), "steps": len(times)}


def seed_worker(args) -> dict:
    """(a)/(b): the zoo's data path and fixed padding, feeding the zoo model."""
    import librosa
    import mindspore as ms
    import soundfile

    from ds2stream.data.text import encode, normalize
    from ds2stream.features import FeatureConfig
    from ds2stream.model import ModelConfig
    from ds2stream.network import build_model
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.config import TrainConfig
    from ds2stream.training.step import build_train_step

    use_graph_mode()
    feature = FeatureConfig()
    rng = np.random.default_rng(0)
    rows = [line.strip().split(",") for line in Path(args["csv"]).read_text().splitlines() if line.strip()]

    def utterances():
        """The zoo's generator: decode, librosa STFT with phase, log1p, normalise, crop or pad."""
        for index in rng.permutation(len(rows)):
            wav, txt = rows[index]
            samples, _ = soundfile.read(wav, dtype="int16")
            stft = librosa.stft(samples.astype(np.float32) / 32767, n_fft=feature.n_fft,
                                hop_length=feature.hop_length, win_length=feature.n_fft,
                                window=feature.window_array(), center=True)
            magnitude, _phase = librosa.magphase(stft)
            spect = np.log1p(magnitude)
            spect = (spect - spect.mean()) / spect.std()
            frames = spect.shape[1]
            if frames > ZOO_FRAMES:  # the zoo crops at random and keeps the whole transcript
                start = int(rng.integers(frames - ZOO_FRAMES))
                spect, frames = spect[:, start:start + ZOO_FRAMES], ZOO_FRAMES
            padded = np.zeros((1, feature.num_bins, ZOO_FRAMES), np.float32)
            padded[0, :, :frames] = spect
            text = normalize(Path(txt).read_text())[:ZOO_LABELS]
            labels = np.full(ZOO_LABELS, 28, np.int32)
            labels[:len(text)] = encode(text)
            yield padded, frames, labels, len(text)

    config = ModelConfig()
    network = build_model(config)
    step = build_train_step(network, TrainConfig(), world_size=1)
    network.set_train(True)
    batch, source = args["batch"], utterances()
    steps, data, real, compile_seconds = [], [], 0, None
    out_frames = config.output_lengths(ZOO_FRAMES)
    for i in range(args["steps"] + 1):
        started = time.perf_counter()
        items = [next(source) for _ in range(batch)]
        waited = time.perf_counter() - started
        features = np.stack([it[0] for it in items])
        labels = np.stack([it[2] for it in items])
        # The zoo gives CTC the full padded output length: the padding counts as speech.
        inputs = (features, np.full(batch, ZOO_FRAMES, np.int32), labels,
                  np.array([min(it[3], out_frames // 2) for it in items], np.int32), np.ones(batch, np.float32))
        started = time.perf_counter()
        loss, _, _ = step(*(ms.Tensor(x) for x in inputs), ms.Tensor(np.float32(1e-4)))
        float(loss.asnumpy())
        seconds = time.perf_counter() - started
        if i == 0:
            compile_seconds = seconds
            continue
        steps.append(seconds)
        data.append(waited)
        real += sum(it[1] for it in items)
    result = summarise(steps, data, real, batch * ZOO_FRAMES * len(steps), train_flops(config, batch, ZOO_FRAMES))
    result.update(compile_seconds=compile_seconds, shapes={f"{batch}x{ZOO_FRAMES}": result["step_median"]})
    return result


def ds2stream_worker(args) -> dict:
    """(c)/(d): shards, the bucketed reader, a preset; a few bucket shapes measured."""
    import mindspore as ms

    from ds2stream.network import build_model
    from ds2stream.pipeline import BatchSampler, BatchSource, EpochIterator, ShardSet
    from ds2stream.presets import get_preset
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.step import STEP_INPUTS, build_train_step

    use_graph_mode()
    preset = get_preset(args["preset"])
    config = preset.model
    shard_set = ShardSet(args["shards"])
    edges = np.array(args["edges"])
    sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, max_frames=BUDGET,
                           edges=edges, output_lengths=config.output_lengths, seed=1)
    source = BatchSource(shard_set, sampler, config.output_lengths)
    network = build_model(config)
    step = build_train_step(network, preset.train, world_size=1)
    network.set_train(True)
    wanted = {int(edges[i]) for i in args["measure_buckets"]}
    seen: dict[int, int] = {}
    per_shape, all_steps, data, real, padded, flops = {}, [], [], 0, 0, 0.0
    compile_seconds = []
    iterator = iter(EpochIterator(source, epoch=1))
    while True:
        started = time.perf_counter()
        try:
            _, batch = next(iterator)
        except StopIteration:
            break
        waited = time.perf_counter() - started
        rows, _, _, frames = batch["features"].shape
        if frames not in wanted or seen.get(frames, 0) > args["steps"]:
            continue
        inputs = [ms.Tensor(batch[k]) for k in STEP_INPUTS]
        started = time.perf_counter()
        loss, _, _ = step(*inputs, ms.Tensor(np.float32(1e-4)))
        float(loss.asnumpy())
        seconds = time.perf_counter() - started
        seen[frames] = seen.get(frames, 0) + 1
        if seen[frames] == 1:
            compile_seconds.append(seconds)
            continue
        per_shape.setdefault(f"{rows}x{frames}", []).append(seconds)
        all_steps.append(seconds)
        data.append(waited)
        real += int((batch["feature_lengths"] * batch["mask"]).sum())
        padded += rows * frames
        flops += train_flops(config, rows, frames)
    result = summarise(all_steps, data, real, padded, flops / max(len(all_steps), 1))
    result.update(compile_seconds=float(np.mean(compile_seconds)),
                  shapes={k: float(np.median(v)) for k, v in per_shape.items()})
    return result


def eval_worker(args) -> dict:
    """Forward passes only: the zoo's eval shape (batch 1, 3500 frames) or ds2stream's buckets."""
    import mindspore as ms

    from ds2stream.network import build_model
    from ds2stream.presets import get_preset
    from ds2stream.runtime import use_graph_mode

    use_graph_mode()
    config = get_preset("zoo").model
    network = build_model(config)
    network.set_train(False)
    timings = {}
    for rows, frames in args["shapes"]:
        features = ms.Tensor(np.random.default_rng(0).standard_normal((rows, 1, 161, frames)).astype(np.float32))
        lengths = ms.Tensor(np.full(rows, frames, np.int32))
        network(features, lengths)[0].asnumpy()  # compile
        started = time.perf_counter()
        network(features, lengths)[0].asnumpy()
        timings[f"{rows}x{frames}"] = time.perf_counter() - started
    return {"shapes": timings}


def run_worker(kind: str, args: dict, env: dict | None = None) -> dict:
    """One configuration in a fresh process (harness.call): its result, seconds and peak memory."""
    return harness.call(__file__, f"{kind}_worker", args, env=env)


# ---------------------------------------------------------------- the run

def plan_epoch(preset_name: str, edges: np.ndarray | None, batch: int | None):
    """Batches per shape of one train-clean-100 epoch, planned from its length distribution."""
    from ds2stream.pipeline import BatchMode, BatchSampler
    from ds2stream.presets import get_preset
    from testkit.corpora import sample_durations

    rng = np.random.default_rng(0)
    frames = (sample_durations("train-clean-100", TRAIN_CLEAN_100["utterances"], rng) * 100).astype(np.int64) + 1
    chars = (frames / 100 * 15).astype(np.int64)  # about 15 characters per second of speech
    config = get_preset(preset_name).model
    if batch is not None:  # the seed: every batch one shape, longer utterances cropped
        return {(batch, ZOO_FRAMES): -(-len(frames) // batch)}, frames
    sampler = BatchSampler(frames, chars, np.arange(len(frames)) // 300, max_frames=BUDGET, edges=edges,
                           output_lengths=config.output_lengths, mode=BatchMode.BUCKETED)
    return sampler.stats(sampler.plan(1)).batches_per_shape, frames


def project(result: dict, preset_name: str, plan: dict) -> dict:
    """Epoch seconds for train-clean-100 from measured shapes, others interpolated in FLOPs."""
    from ds2stream.presets import get_preset

    config = get_preset(preset_name).model
    measured = {tuple(map(int, k.split("x"))): v for k, v in result["shapes"].items()}
    xs = np.array([train_flops(config, r, f) for r, f in measured])
    ys = np.array(list(measured.values()))
    slope, intercept = np.polyfit(xs, ys, 1) if len(xs) > 1 else (ys[0] / xs[0], 0.0)
    seconds = 0.0
    for (rows, frames), count in plan.items():
        step = measured.get((rows, frames), slope * train_flops(config, rows, frames) + intercept)
        seconds += count * (step + result["data_wait_per_step"])
    return {"epoch_hours_train_clean_100": seconds / 3600,
            "epoch_hours_960": seconds / 3600 * LIBRISPEECH_960_HOURS / TRAIN_CLEAN_100["hours"]}


def make_data(work: Path) -> dict:
    from ds2stream.data import SAMPLE_DIR
    from ds2stream.data.shards import ShardOptions, write_shard_set
    from ds2stream.data.zoo import prepare_zoo_manifest
    from testkit.corpora import synthetic_librispeech

    corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", hours=0.7, seed=3)
    write_shard_set([corpus], work / "shards", ShardOptions(shard_size_mb=8), jobs=2)
    return {"csv": str(prepare_zoo_manifest(corpus, work / "zoo")), "shards": str(work / "shards")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (and per shape)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/step.json"))
    args = parser.parse_args()

    from ds2stream.pipeline import bucket_boundaries

    work = Path(tempfile.mkdtemp(prefix="ds2stream-bench-step-"))
    data = make_data(work)
    _, lengths = plan_epoch("zoo", None, 1)
    edges = bucket_boundaries(lengths, 16)
    measure = [1, 8, 15]  # a short, a middle and the longest of the 16 buckets
    default_isa = {"ONEDNN_MAX_CPU_ISA": "ALL"}
    runs = [
        ("(a) seed, batch 1", "zoo", "seed", {"csv": data["csv"], "batch": 1, "steps": args.steps}, default_isa, 1),
        ("(a2) seed, batch 1, AVX2", "zoo", "seed", {"csv": data["csv"], "batch": 1, "steps": args.steps}, {}, 1),
        # one timed step: with the reference convolution a batch-8 step takes over 2 minutes here
        ("(b) seed, batch 8", "zoo", "seed", {"csv": data["csv"], "batch": 8, "steps": 1}, default_isa, 8),
        ("(b2) seed, batch 8, AVX2", "zoo", "seed", {"csv": data["csv"], "batch": 8, "steps": args.steps}, {}, 8),
        ("(c) ds2stream, zoo preset", "zoo", "ds2stream",
         {"shards": data["shards"], "preset": "zoo", "edges": edges.tolist(), "measure_buckets": measure,
          "steps": args.steps}, {}, None),
        ("(d) ds2stream, fast preset", "fast", "ds2stream",
         {"shards": data["shards"], "preset": "fast", "edges": edges.tolist(), "measure_buckets": measure,
          "steps": args.steps}, {}, None),
    ]
    results = {}
    for label, preset, kind, worker_args, env, batch in runs:
        started = time.perf_counter()
        result = run_worker(kind, worker_args, env)
        plan, _ = plan_epoch(preset, edges, batch)
        result.update(project(result, preset, plan))
        per_step = result["step_median"] + result["data_wait_per_step"]
        result["audio_seconds_per_second"] = result["real_frames"] / 100 / (per_step * result["steps"])
        result["gflops"] = result["flops"] / 1e9 / result["step_median"]
        result["wall_seconds"] = time.perf_counter() - started
        results[label] = result
        print(f"{label}: median step {result['step_median']:.2f} s, "
              f"{result['audio_seconds_per_second']:.2f} audio-s/s, "
              f"epoch {result['epoch_hours_train_clean_100']:.1f} h ({result['wall_seconds']:.0f} s)", flush=True)
    results["eval"] = eval_comparison(edges, args)
    harness.save(args.out, {"configurations": results})
    print_table(results)


def eval_comparison(edges, args) -> dict:
    """Seconds per audio hour of forward passes: zoo (1 x 3500) against ds2stream's eval buckets
    on test-clean's lengths."""
    from ds2stream.pipeline import BatchSampler
    from ds2stream.presets import get_preset
    from testkit.corpora import sample_durations

    rng = np.random.default_rng(1)
    frames = (sample_durations("test-clean", 2620, rng) * 100).astype(np.int64) + 1
    config = get_preset("zoo").model
    sampler = BatchSampler(frames, frames // 7, np.zeros(len(frames)), num_buckets=8, max_frames=40000,
                           shuffle=False, output_lengths=config.output_lengths)
    plan = sampler.stats(sampler.plan(0)).batches_per_shape
    shapes = sorted(plan)
    measured = run_worker("eval", {"shapes": [[1, ZOO_EVAL_FRAMES]] + [list(s) for s in shapes[::3]]})
    timings = {tuple(map(int, k.split("x"))): v for k, v in measured["shapes"].items()}
    zoo = timings.pop((1, ZOO_EVAL_FRAMES))
    xs = np.array([forward_flops(config, r, f) for r, f in timings])
    slope, intercept = np.polyfit(xs, np.array(list(timings.values())), 1)
    ours = sum(count * timings.get(shape, slope * forward_flops(config, *shape) + intercept)
               for shape, count in plan.items())
    hours = frames.sum() / 100 / 3600
    return {"zoo_seconds_per_audio_hour": zoo * len(frames) / hours, "ds2stream_seconds_per_audio_hour": ours / hours,
            "peak_rss_mb": measured["peak_rss_mb"]}


def print_table(results: dict) -> None:
    base = results["(a) seed, batch 1"]["audio_seconds_per_second"]
    print(f"\n{'configuration':30s} {'step med':>8s} {'p90':>6s} {'compile':>7s} {'data/step':>9s} "
          f"{'padding':>8s} {'audio-s/s':>9s} {'vs (a)':>6s} {'GFLOP/s':>8s} {'% peak':>6s} {'mem GB':>6s} "
          f"{'100 h epoch':>11s} {'960 h':>7s}")
    for label, r in results.items():
        if label == "eval":
            continue
        padding = r["padded_frames"] / max(r["real_frames"], 1) - 1
        print(f"{label:30s} {r['step_median']:8.2f} {r['step_p90']:6.2f} {r['compile_seconds']:7.1f} "
              f"{r['data_wait_per_step']:9.3f} {padding:8.1%} {r['audio_seconds_per_second']:9.2f} "
              f"{r['audio_seconds_per_second'] / base:5.1f}x {r['gflops']:8.1f} {r['gflops'] / PEAK_GFLOPS:6.1%} "
              f"{r['peak_rss_mb'] / 1000:6.1f} {r['epoch_hours_train_clean_100']:9.1f} h "
              f"{r['epoch_hours_960']:5.0f} h")
    e = results["eval"]
    print(f"\neval, seconds per audio hour (forward passes, test-clean lengths): zoo (1 x 3500 frames) "
          f"{e['zoo_seconds_per_audio_hour']:.0f}, ds2stream (buckets) {e['ds2stream_seconds_per_audio_hour']:.0f}: "
          f"{e['zoo_seconds_per_audio_hour'] / e['ds2stream_seconds_per_audio_hour']:.1f}x faster")


if __name__ == "__main__":
    main()
