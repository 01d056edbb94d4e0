"""Time to accuracy of one training run: every checkpoint it kept, evaluated on a held-out shard set
(greedy), against the training time it took to get there.

Training time is the sum of the step times in the run's metrics.jsonl up to the checkpoint's
global step (the compiled steps, data waits included; dev evaluation and checkpoint writes are
not). Run it after training, never beside it: the evaluation takes the same cores. Keep every
checkpoint with `ds2stream train --keep-last 0`.

    python bench/time_to_accuracy.py RUN_DIR --shards SHARDS/test [--out bench/out/tta.json]
"""
import argparse
import json
from pathlib import Path

THRESHOLDS = (0.40, 0.25, 0.15)  # CER


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--shards", type=Path, required=True, help="held-out set (unseen voices)")
    parser.add_argument("--out", type=Path, help="JSON with every point")
    args = parser.parse_args()

    from ds2stream.checkpoint import load_model
    from ds2stream.inference.evaluate import evaluate
    from ds2stream.pipeline import ShardSet
    from ds2stream.runtime import quiet_framework_logs, use_graph_mode

    quiet_framework_logs(False)
    use_graph_mode()
    records = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds_at, total = {}, 0.0
    for record in records:
        if "step_seconds" in record:
            total += record["step_seconds"]
            seconds_at[record["global_step"]] = total
    shard_set = ShardSet(args.shards)
    points = []
    for checkpoint in sorted((args.run_dir / "checkpoints").glob("step-*.ckpt")):
        network, meta = load_model(checkpoint)
        step = meta["state"]["global_step"]
        report = evaluate(network, shard_set)
        points.append({"checkpoint": checkpoint.name, "global_step": step, "epoch": meta["state"]["epoch"],
                       "train_minutes": seconds_at.get(step, total) / 60, "wer": report.wer, "cer": report.cer})
        print(f"{checkpoint.name}: step {step}, {points[-1]['train_minutes']:.1f} min of training, "
              f"WER {report.wer:.2%}, CER {report.cer:.2%}", flush=True)
    for threshold in THRESHOLDS:
        reached = [p["train_minutes"] for p in points if p["cer"] <= threshold]
        print(f"CER <= {threshold:.0%}: " + (f"after {reached[0]:.1f} min of training" if reached else "not reached"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"run": str(args.run_dir), "shards": str(args.shards), "points": points},
                                       indent=1))


if __name__ == "__main__":
    main()
