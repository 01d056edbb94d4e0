"""Data parallel with msrun: audio-seconds trained per wall-second with 1 and 2 processes on this
machine, the measured all-reduce cost of the presets' gradients, and what N machines would give.

1. Throughput: one bucket shape (utterances of train-clean-100's lengths up to 17.6 s, every batch
   padded to 1,760 frames, the preset's frame budget per rank), the first step (compilation)
   apart. The `fast` and `zoo` presets in one process, then `fast` under `msrun` with 2 local
   workers (each rank its own batch of the same size: the global batch doubles). On a 2-core
   machine the two ranks share the cores one process already uses, so no gain is expected here;
   the number says what the all-reduce and the second process cost.
2. All-reduce: the time of one AllReduce of a float32 vector the size of each preset's gradients
   between 2 ranks: on loopback (one msrun, 2 local workers), and with ``--nodes`` between two
   "machines" (network namespaces joined by a veth pair, one msrun each, as
   tests/test_two_machines.py runs them) over a link shaped by tc's token-bucket filter to each
   of ``--links`` Gbit/s (needs root).
3. Projection for N machines of this kind: per step, each machine computes its batch in the
   measured single-process step time, then a ring all-reduce moves 2 (N-1)/N x the gradient bytes
   through each machine. With ``--nodes`` its time comes from the two-machine measurement on each
   link (for 2 ranks, 2 (N-1)/N = 1: the measured time is the unit); without, it is estimated at
   the slower of the link and the loopback all-reduce. Nothing overlaps the all-reduce with the
   backward pass (MindSpore does not on CPU). Throughput = N x audio per step / (step +
   all-reduce); epoch time of train-clean-100 (100.6 h). Compute scaling itself cannot be
   measured with two ranks on two cores: that part stays arithmetic.

    python bench/distributed.py [--steps 4] [--nodes [--links 1 10]] [--out bench/out/distributed.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from ds2stream.presets import PRESETS
from testkit.machines import TwoMachines, local_msrun, namespaces_forbidden

FRAMES = 1760  # one bucket edge: 17.6 s
TRAIN_CLEAN_100_HOURS = 100.6
ESTIMATED_LINKS_GBIT = (10, 25)  # without --nodes
MACHINES = (1, 2, 4, 8, 16, 32)


# ---------------------------------------------------------------- worker (one process or one rank)

def worker(args) -> None:
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.distributed import init_distributed

    use_graph_mode()
    rank, world_size = init_distributed() if args.distributed else (0, 1)
    result = {"world_size": world_size}
    if not args.all_reduce_only:
        result.update(train_steps(args, rank, world_size))
    if world_size > 1:
        result["all_reduce"] = time_all_reduce(args.repeats)
    if rank == 0:
        Path(args.result).write_text(json.dumps(result))


def train_steps(args, rank: int, world_size: int) -> dict:
    import mindspore as ms

    from ds2stream.network import build_model
    from ds2stream.pipeline import BatchSampler, BatchSource, EpochIterator, ShardSet
    from ds2stream.presets import get_preset
    from ds2stream.training.step import STEP_INPUTS, build_train_step

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
    return {"step_median": float(np.median(seconds)), "steps": len(seconds),
            "audio_seconds_per_step": audio / len(seconds) * world_size, "rows": int(batch["features"].shape[0])}


def time_all_reduce(repeats: int) -> dict:
    """Median seconds of one all-reduce of a float32 vector the size of each preset's gradients."""
    from ds2stream.network import build_model
    from ds2stream.training.distributed import AllReduceSum

    all_reduce, timed = AllReduceSum(), {}
    for name, preset in PRESETS.items():
        size = sum(int(np.prod(p.shape)) for p in build_model(preset.model).trainable_params())
        vector = np.ones(size, np.float32)
        all_reduce(vector)  # compile, first touch
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            all_reduce(vector)
            times.append(time.perf_counter() - started)
        timed[name] = {"parameters": size, "seconds": float(np.median(times))}
    return timed


# ---------------------------------------------------------------- the run

def make_shards(work: Path) -> Path:
    from ds2stream.data import SAMPLE_DIR
    from ds2stream.data.shards import ShardOptions, write_shard_set
    from testkit.corpora import synthetic_librispeech

    corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", hours=0.4, seed=5)
    write_shard_set([corpus], work / "shards", ShardOptions(shard_size_mb=8), jobs=2)
    return work / "shards"


def run(command: list, result: Path, log_dir: Path | None = None) -> dict:
    """A worker (or msrun and its ranks) in processes of their own: rank 0's result, the wall
    seconds and the peak memory of the whole tree (harness.run)."""
    done = harness.run(command, check=False)
    if done.returncode != 0:
        logs = "".join(p.read_text()[-3000:] for p in sorted(log_dir.glob("*.log"))) if log_dir else ""
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}\n{logs}")
    return {**json.loads(result.read_text()), "wall_seconds": done.seconds, "peak_rss_mb": round(done.peak_rss_mb, 1)}


def all_reduce_between_machines(work: Path, gbit: float, repeats: int) -> dict:
    """The all-reduce times between two namespaces over a veth link shaped to ``gbit``."""
    result = work / f"link-{gbit:g}.json"
    task = [__file__, "--run-worker", "--distributed", "--all-reduce-only", "--repeats", str(repeats),
            "--result", str(result)]
    with TwoMachines(rate_gbit=gbit) as machines:
        for node in machines.start_msrun(task, work / f"log-link-{gbit:g}"):
            output, _ = node.communicate(timeout=1800)
            if node.returncode != 0:
                sys.exit(f"two machines at {gbit:g} Gbit/s failed:\n{output[-3000:]}")
    return json.loads(result.read_text())["all_reduce"]


def project(step_seconds: float, audio_per_step: float, two_machine_seconds: dict) -> list:
    """Per number of machines and link: the ring all-reduce's time (2 (N-1)/N x the two-machine
    time on that link), audio trained per second, the epoch's hours and the efficiency."""
    rows = []
    for machines in MACHINES:
        row = {"machines": machines}
        for link, seconds in two_machine_seconds.items():
            transfer = 2 * (machines - 1) / machines * seconds
            per_second = machines * audio_per_step / (step_seconds + transfer)
            row[link] = {"all_reduce_seconds": transfer, "audio_seconds_per_second": per_second,
                         "epoch_hours": TRAIN_CLEAN_100_HOURS * 3600 / per_second / 3600,
                         "efficiency": step_seconds / (step_seconds + transfer)}
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration")
    parser.add_argument("--repeats", type=int, default=5, help="timed all-reduces per size")
    parser.add_argument("--nodes", action="store_true",
                        help="also measure the all-reduce between two network namespaces (needs root)")
    parser.add_argument("--links", type=float, nargs="+", default=[1, 10], help="link rates in Gbit/s (--nodes)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/distributed.json"))
    parser.add_argument("--run-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--all-reduce-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_worker:
        return worker(args)
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: needs at least 1")
    if args.nodes and not all(0 < gbit <= 1000 for gbit in args.links):
        given = " ".join(f"{gbit:g}" for gbit in args.links)
        parser.error(f"--links {given}: each a rate in Gbit/s, above 0 and at most 1000")
    forbidden = namespaces_forbidden() if args.nodes else None
    if forbidden:
        sys.exit(f"--nodes: {forbidden}")

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
    links = {}
    for gbit in args.links if args.nodes else ():
        links[f"{gbit:g} Gbit/s"] = all_reduce_between_machines(work, gbit, args.repeats)
        print(f"two machines at {gbit:g} Gbit/s: " + ", ".join(
            f"{name} {r['seconds']:.2f} s" for name, r in links[f"{gbit:g} Gbit/s"].items()), flush=True)

    results = {"one_process": single, "two_ranks": double, "two_machines": links, "projection": {}}
    for name, one in single.items():
        loopback = double["all_reduce"][name]
        gradient_bytes = 4 * loopback["parameters"]
        if links:  # measured between two machines
            two_machine_seconds = {link: timed[name]["seconds"] for link, timed in links.items()}
        else:  # estimated: the slower of the link and MindSpore's all-reduce on loopback
            two_machine_seconds = {f"{gbit} Gbit/s (estimated)":
                                   max(loopback["seconds"], gradient_bytes * 8 / gbit / 1e9)
                                   for gbit in ESTIMATED_LINKS_GBIT}
        results["projection"][name] = {
            "step_seconds": one["step_median"], "audio_seconds_per_step": one["audio_seconds_per_step"],
            "two_machine_all_reduce_seconds": two_machine_seconds,
            "machines": project(one["step_median"], one["audio_seconds_per_step"], two_machine_seconds)}
    harness.save(args.out, results)
    print_table(results)


def print_table(results: dict) -> None:
    one, two = results["one_process"]["fast"], results["two_ranks"]
    a1 = one["audio_seconds_per_step"] / one["step_median"]
    a2 = two["audio_seconds_per_step"] / two["step_median"]
    print(f"\nthis machine, fast preset, {FRAMES}-frame batches of {one['rows']} rows per rank:")
    print(f"  1 process: {one['step_median']:.2f} s per step, {a1:.2f} audio-s/s")
    print(f"  2 ranks  : {two['step_median']:.2f} s per step, {a2:.2f} audio-s/s ({a2 / a1:.2f}x)")
    print("\nall-reduce of each preset's gradients, 2 ranks (s; effective Gbit/s):")
    measured = {"loopback": two["all_reduce"], **results["two_machines"]}
    print(f"  {'preset':8s} {'MB':>6s}" + "".join(f" {link:>20s}" for link in measured))
    for name, loopback in two["all_reduce"].items():
        megabytes = 4 * loopback["parameters"] / 1e6
        cells = "".join(f" {timed[name]['seconds']:8.2f} s ({megabytes * 8e-3 / timed[name]['seconds']:5.1f} G)"
                        for timed in measured.values())
        print(f"  {name:8s} {megabytes:6.0f}{cells}")
    for name, p in results["projection"].items():
        print(f"\n{name} preset: step {p['step_seconds']:.2f} s for {p['audio_seconds_per_step']:.0f} audio-s")
        links = list(p["two_machine_all_reduce_seconds"])
        print(f"  {'machines':>8s}" + "".join(f" {link + ': reduce s, audio-s/s, epoch h, eff':>52s}"
                                              for link in links))
        for row in p["machines"]:
            cells = "".join(f" {c['all_reduce_seconds']:20.2f} {c['audio_seconds_per_second']:10.1f}"
                            f" {c['epoch_hours']:9.2f} {c['efficiency']:9.0%}" for c in (row[link] for link in links))
            print(f"  {row['machines']:8d}{cells}")


if __name__ == "__main__":
    main()
