"""Time to accuracy of one training run: every checkpoint it kept, evaluated on one or more held-out
shard sets (greedy), against the training time it took to get there.

Training time is the sum of the step times in the run's metrics.jsonl up to the checkpoint's
global step (the compiled steps, data waits included; dev evaluation and checkpoint writes are
not). Run it after training, never beside it: the evaluation takes the same cores. Keep every
checkpoint with `ds2stream train --keep-last 0`. bench/presets.py runs it for every preset.

    python bench/time_to_accuracy.py RUN_DIR --shards SHARDS/test [--shards real-dev=SHARDS/real-dev ...] \
        [--out bench/out/tta.json]

Each --shards is PATH or NAME=PATH (a bare path is named "test"); the first is the primary set:
its WER and CER are each point's "wer" and "cer", and every set's are under "sets".
"""
import argparse
from pathlib import Path

import harness

THRESHOLDS = (0.40, 0.25, 0.15)  # CER


def step_records(run_dir: Path) -> list:
    """The run's step records in step order, each step once (a step logged twice after a resume
    counts once: its last record)."""
    from ds2stream.training.metrics import StepRecord, read_records

    steps = {r.global_step: r for r in read_records(run_dir) if isinstance(r, StepRecord)}
    return [steps[step] for step in sorted(steps)]


def training_seconds(run_dir: Path) -> dict[int, float]:
    """Global step -> summed step seconds up to it."""
    total, at = 0.0, {}
    for record in step_records(run_dir):
        total += record.step_seconds
        at[record.global_step] = total
    return at


def training_throughput(run_dir: Path) -> dict:
    """The run's steps, their summed seconds and the audio they trained on (the first step, which
    compiles the graph, left out): audio-seconds trained per step-second."""
    records = step_records(run_dir)
    seconds, audio = sum(r.step_seconds for r in records[1:]), sum(r.audio_seconds for r in records[1:])
    return {"steps": len(records), "step_seconds": seconds, "audio_seconds": audio,
            "audio_seconds_per_step_second": audio / seconds if seconds else None}


def evaluate_checkpoint(spec: dict) -> dict:
    """One checkpoint (``spec["checkpoint"]``) on every held-out set (``spec["tests"]``, name ->
    folder), in a process of its own: see evaluate_run."""
    from ds2stream.checkpoint import load_model, model_features
    from ds2stream.inference.evaluate import evaluate
    from ds2stream.pipeline import ShardSet
    from ds2stream.runtime import quiet_framework_logs, use_graph_mode
    quiet_framework_logs(False)
    use_graph_mode()
    checkpoint = Path(spec["checkpoint"])
    network, meta = load_model(checkpoint)
    sets = {}
    for name, shards in spec["tests"].items():
        report = evaluate(network, ShardSet(shards, model_features(meta)))
        sets[name] = {"wer": report.wer, "cer": report.cer, "eval_seconds": report.wall_seconds}
    primary = sets[next(iter(spec["tests"]))]
    return {"checkpoint": checkpoint.name, "global_step": meta["state"]["global_step"], "epoch": meta["state"]["epoch"],
            "wer": primary["wer"], "cer": primary["cer"], "sets": sets}


def named_sets(tests) -> dict[str, str]:
    """``PATH`` or ``NAME=PATH`` arguments (or one path) as an ordered name -> path dict; a bare path
    is "test"."""
    if isinstance(tests, (str, Path)):
        tests = [tests]
    named = {}
    for item in map(str, tests):
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep else ("test", item)
        if name in named:
            raise ValueError(f"two held-out sets are named {name!r}: give NAME=PATH")
        named[name] = path
    return named


def evaluate_run(run_dir: Path, tests) -> list[dict]:
    """Every kept checkpoint of the run: its step, epoch, training minutes and WER/CER on every
    held-out set (``named_sets``). Each checkpoint is evaluated in a fresh process: MindSpore keeps
    what a network's graphs hold until the process ends, and three zoo models (86.6 M parameters)
    did not fit one after the other."""
    seconds_at, tests = training_seconds(run_dir), named_sets(tests)
    points = []
    for checkpoint in sorted((run_dir / "checkpoints").glob("step-*.ckpt")):
        point = harness.call(__file__, "evaluate_checkpoint", {"checkpoint": str(checkpoint), "tests": tests})
        points.append({**point, "train_minutes": seconds_at[point["global_step"]] / 60})
        figures = ", ".join(f"{name} CER {f['cer']:.2%} WER {f['wer']:.2%}" for name, f in point["sets"].items())
        print(f"{run_dir.name}/{checkpoint.name}: step {point['global_step']}, {points[-1]['train_minutes']:.1f} min "
              f"of training, {figures}", flush=True)
    return points


def minutes_to_reach(points: list[dict], cer: float) -> float | None:
    """Training minutes of the first checkpoint at or below this CER (None: never reached)."""
    return next((p["train_minutes"] for p in sorted(points, key=lambda p: p["train_minutes"]) if p["cer"] <= cer),
                None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--shards", action="append", required=True, metavar="[NAME=]PATH",
                        help="a held-out set; again for more (the first is the primary one)")
    parser.add_argument("--out", type=Path, help="JSON with every point")
    args = parser.parse_args()

    points = evaluate_run(args.run_dir, args.shards)
    for threshold in THRESHOLDS:
        reached = minutes_to_reach(points, threshold)
        print(f"CER <= {threshold:.0%}: " + (f"after {reached:.1f} min of training" if reached else "not reached"))
    if args.out:
        harness.save(args.out, {"run": str(args.run_dir), "tests": named_sets(args.shards), "points": points})


if __name__ == "__main__":
    main()
