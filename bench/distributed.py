"""Data parallel with msrun: audio-seconds trained per wall-second with 1 and 2 processes on this
machine, the measured all-reduce cost of the models' gradients, and a projection for N machines.

1. Throughput: one bucket shape (utterances of train-clean-100's lengths up to 17.6 s, every batch
   padded to 1,760 frames, the preset's frame budget per rank), the first step (compilation)
   apart. The `fast` and `zoo` presets in one process, then `fast` under `msrun` with 2 local
   workers (each rank its own batch of the same size: the global batch doubles). On a 2-core
   machine the two ranks share the cores one process already uses, so no gain is expected here;
   the number says what the all-reduce and the second process cost.
2. All-reduce: the time of one AllReduce of a float32 vector the size of each preset's gradients
   (fast 16.2 M, zoo 86.6 M trainable parameters) between the 2 ranks on loopback; its bus bandwidth.
3. Projection for N machines of this kind: per step, each machine computes its batch in the
   measured single-process step time, then a ring all-reduce moves 2 (N-1)/N x the gradient bytes
   through each machine at the slower of the network (10 or 25 Gbit/s) and the bus bandwidth
   MindSpore's CPU all-reduce reached on loopback here (its own ceiling: copies, not wires).
   Nothing overlaps the all-reduce with the backward pass (MindSpore does not on CPU).
   Throughput = N x audio per step / (step + all-reduce); epoch time of train-clean-100 (100.6 h).
   A projection: only one machine was available.

    python bench/distributed.py [--steps 4] [--out bench/out/distributed.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ds2stream.testing import local_msrun

FRAMES = 1760  # one bucket edge: 17.6 s
TRAIN_CLEAN_100_HOURS = 100.6
NETWORKS_GBIT = (10, 25)
MACHINES = (1, 2, 4, 8, 16, 32)


# ---------------------------------------------------------------- worker (one process or one rank)

def worker(args) -> None:
    import mindspore as ms
    from mindspore import nn, ops

    from ds2stream.model import build_model
    from ds2stream.pipeline import BatchSampler, BatchSource, EpochIterator, ShardSet
    from ds2stream.presets import get_preset
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.distributed import init_distributed
    from ds2stream.training.step import STEP_INPUTS, build_train_step

    use_graph_mode()
    rank, world_size = init_distributed() if args.distributed else (0, 1)
    preset = get_preset(args.preset)
    shard_set = ShardSet(args.shards)
    sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, max_frames=preset.train.max_frames,
                           edges=np.array([FRAMES]), output_lengths=preset.model.output_lengths, seed=1,
                           rank=rank, world_size=world_size, ctc_lengths=shard_set.ctc_lengths)
    network = build_model(preset.model)
    step = build_train_step(network, preset.train, world_size=world_size)
    network.set_train(True)
    seconds, audio = [], 0.0
    for i, (_, batch) in enumerate(EpochIterator(BatchSource(shard_set, sampler, preset.model.output_lengths), 1)):
        if i > args.steps:
            break
        inputs = [ms.Tensor(batch[k]) for k in STEP_INPUTS]
        started = time.perf_counter()
        float(step(*inputs, ms.Tensor(np.float32(1e-4)))[0].asnumpy())
        if i > 0:  # the first step compiles
            seconds.append(time.perf_counter() - started)
            audio += float((batch["feature_lengths"] * batch["mask"]).sum()) / 100
    result = {"world_size": world_size, "step_median": float(np.median(seconds)), "steps": len(seconds),
              "audio_seconds_per_step": audio / len(seconds) * world_size, "rows": int(batch["features"].shape[0])}

    if world_size > 1:
        class AllReduce(nn.Cell):
            def __init__(self):
                super().__init__()
                self.all_reduce = ops.AllReduce()

            def construct(self, x):
                return self.all_reduce(x)

        all_reduce = AllReduce()
        result["all_reduce"] = {}
        for name in ("fast", "zoo"):
            size = sum(int(np.prod(p.shape)) for p in build_model(get_preset(name).model).trainable_params())
            vector = ms.Tensor(np.ones(size, np.float32))
            all_reduce(vector).asnumpy()  # compile, first touch
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                all_reduce(vector).asnumpy()
                times.append(time.perf_counter() - started)
            result["all_reduce"][name] = {"parameters": size, "seconds": float(np.median(times))}
    if rank == 0:
        Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------- the run

def make_shards(work: Path) -> Path:
    from ds2stream.data import SAMPLE_DIR
    from ds2stream.data.shards import ShardOptions, write_shard_set
    from ds2stream.testing import synthetic_librispeech

    corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", hours=0.4, seed=5)
    write_shard_set([corpus], work / "shards", ShardOptions(shard_size_mb=8), jobs=2)
    return work / "shards"


def run(command: list, result: Path, log_dir: Path | None = None) -> dict:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        logs = "".join(p.read_text()[-3000:] for p in sorted(log_dir.glob("*.log"))) if log_dir else ""
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}\n{logs}")
    return {**json.loads(result.read_text()), "wall_seconds": time.perf_counter() - started}


def project(step_seconds: float, audio_per_step: float, gradient_bytes: float, loopback_gbit: float) -> list:
    rows = []
    for machines in MACHINES:
        row = {"machines": machines}
        for gbit in NETWORKS_GBIT:
            bandwidth = min(gbit, loopback_gbit) * 1e9 / 8  # bytes per second
            transfer = 2 * (machines - 1) / machines * gradient_bytes / bandwidth
            per_second = machines * audio_per_step / (step_seconds + transfer)
            row[f"{gbit}G"] = {"all_reduce_seconds": transfer, "audio_seconds_per_second": per_second,
                               "epoch_hours": TRAIN_CLEAN_100_HOURS * 3600 / per_second / 3600,
                               "efficiency": step_seconds / (step_seconds + transfer)}
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration")
    parser.add_argument("--repeats", type=int, default=5, help="timed all-reduces per size")
    parser.add_argument("--out", type=Path, default=Path("bench/out/distributed.json"))
    parser.add_argument("--run-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_worker:
        return worker(args)

    work = Path(tempfile.mkdtemp(prefix="ds2stream-bench-distributed-"))
    shards = make_shards(work)
    common = ["--run-worker", "--shards", str(shards), "--steps", str(args.steps), "--repeats", str(args.repeats)]
    single = {}
    for preset in ("fast", "zoo"):
        result = work / f"one-{preset}.json"
        single[preset] = run([sys.executable, __file__, *common, "--preset", preset, "--result", str(result)], result)
        print(f"1 process, {preset}: step {single[preset]['step_median']:.2f} s, "
              f"{single[preset]['audio_seconds_per_step'] / single[preset]['step_median']:.2f} audio-s/s", flush=True)
    command = [*local_msrun(2, work / "log"), __file__, *common, "--distributed", "--result", str(work / "two.json")]
    double = run(command, work / "two.json", work / "log")
    print(f"2 ranks: step {double['step_median']:.2f} s, "
          f"{double['audio_seconds_per_step'] / double['step_median']:.2f} audio-s/s", flush=True)

    results = {"one_process": single, "two_ranks": double, "projection": {}}
    for name, one in single.items():
        step_seconds, audio_per_step = one["step_median"], one["audio_seconds_per_step"]
        reduce = double["all_reduce"][name]
        gradient_bytes = 4 * reduce["parameters"]
        loopback_gbit = gradient_bytes * 8 / reduce["seconds"] / 1e9  # 2 ranks: 2 (N-1)/N = 1
        results["projection"][name] = {
            "step_seconds": step_seconds, "audio_seconds_per_step": audio_per_step,
            "loopback_all_reduce_seconds": reduce["seconds"], "loopback_bus_gbit": loopback_gbit,
            "machines": project(step_seconds, audio_per_step, gradient_bytes, loopback_gbit)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    one, two = results["one_process"]["fast"], results["two_ranks"]
    a1 = one["audio_seconds_per_step"] / one["step_median"]
    a2 = two["audio_seconds_per_step"] / two["step_median"]
    print(f"\nthis machine, fast preset, {FRAMES}-frame batches of {one['rows']} rows per rank:")
    print(f"  1 process: {one['step_median']:.2f} s per step, {a1:.2f} audio-s/s")
    print(f"  2 ranks  : {two['step_median']:.2f} s per step, {a2:.2f} audio-s/s ({a2 / a1:.2f}x)")
    for name, p in results["projection"].items():
        print(f"\n{name} preset: step {p['step_seconds']:.2f} s for {p['audio_seconds_per_step']:.0f} audio-s; "
              f"all-reduce of {4 * two['all_reduce'][name]['parameters'] / 1e6:.0f} MB on loopback "
              f"{p['loopback_all_reduce_seconds']:.2f} s ({p['loopback_bus_gbit']:.1f} Gbit/s)")
        print(f"  {'machines':>8s}" + "".join(f" {g + ' Gbit/s: reduce s, audio-s/s, epoch h, eff':>46s}"
                                              for g in map(str, NETWORKS_GBIT)))
        for row in p["machines"]:
            cells = "".join(f" {c['all_reduce_seconds']:14.2f} {c['audio_seconds_per_second']:10.1f}"
                            f" {c['epoch_hours']:9.2f} {c['efficiency']:9.0%}"
                            for c in (row[f"{g}G"] for g in NETWORKS_GBIT))
            print(f"  {row['machines']:8d}{cells}")


if __name__ == "__main__":
    main()
