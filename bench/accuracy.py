"""What a faster preset costs in accuracy: each preset's model trained with one recipe on the
bundled sample, its test WER/CER beside its training speed.

bench/step.py measures speed on LibriSpeech-length audio; this measures the other side of the
trade. Every model gets the same recipe -- the `tiny` preset's training config (the demo's
recipe: its epochs, 2,000-frame batches, LR 2e-3 with 50 warm-up steps), the same shards (bundled FSDD sample:
1,020 train, 180 dev, 300 test recordings of spoken digits) -- so only the model differs. The dev
split picks the checkpoint, the test split measures it. Spoken digits are an easy task: this shows
whether a model can learn at all and how fast it gets there, not its LibriSpeech WER.

    python bench/accuracy.py [--presets tiny fast] [--epochs N] [--out bench/out/accuracy.json]
"""
import argparse
import json
import tempfile
from pathlib import Path

import harness

from ds2stream.presets import PRESETS


def demo_scores(label: str, preset: str, train_config, epochs: int | None = None) -> dict:
    """Train ``preset``'s model with ``train_config`` on the bundled sample (run_demo) and score it,
    in a process of its own (its peak memory measured)."""
    scores = harness.call(__file__, "train_and_score", {"label": label, "preset": preset, "epochs": epochs,
                                                         "train_config": train_config.to_dict()})
    print(json.dumps({label: scores}), flush=True)
    return scores


def train_and_score(spec: dict) -> dict:
    """In the child: demo_scores's work."""
    from ds2stream.demo import run_demo
    from ds2stream.training.config import TrainConfig
    from ds2stream.training.metrics import EpochEnd, read_records

    label = spec["label"]
    with tempfile.TemporaryDirectory() as work:
        result = run_demo(Path(work) / label, preset=spec["preset"], epochs=spec["epochs"],
                          train_config=TrainConfig.from_dict(spec["train_config"]),
                          progress=False, log=lambda line: print(f"[{label}] {line}", flush=True))
        epochs_done = [r for r in read_records(result.run_dir) if isinstance(r, EpochEnd)]
        return {
            "test_wer": result.report.wer, "test_cer": result.report.cer,
            "checkpoint": result.checkpoint.name,
            "best_dev_wer": min(r.dev_wer for r in epochs_done),
            "epochs": len(epochs_done),
            "train_seconds": result.stage_seconds["train"],
            "train_audio_seconds_per_second": sum(r.audio_seconds for r in epochs_done)
            / sum(r.seconds for r in epochs_done),
        }


def write_table(results: dict, heading: str, out: Path | None) -> None:
    """Save ``results`` (label -> demo_scores) as JSON and print them as a table."""
    if out:
        harness.save(out, {"results": results})
    print(f"\n{heading:13s} {'test WER':>9s} {'test CER':>9s} {'best dev WER':>13s} {'train s':>8s} {'audio-s/s':>10s}"
          f" {'peak RSS':>9s}")
    for label, r in results.items():
        print(f"{label:13s} {r['test_wer']:9.2%} {r['test_cer']:9.2%} {r['best_dev_wer']:13.2%} "
              f"{r['train_seconds']:8.0f} {r['train_audio_seconds_per_second']:10.1f} {r['peak_rss_mb'] / 1e3:7.1f} GB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "fast"], choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, help="default: the recipe's (35)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/accuracy.json"))
    args = parser.parse_args()
    recipe = PRESETS["tiny"].train
    results = {name: demo_scores(name, name, recipe, args.epochs) for name in args.presets}
    write_table(results, "preset", args.out)


if __name__ == "__main__":
    main()
