"""What a faster preset costs in accuracy: each preset's model trained with one recipe on the
bundled sample, its test WER/CER beside its training speed.

bench/step.py measures speed on LibriSpeech-length audio; this measures the other side of the
trade. Every model gets the same recipe -- the `tiny` preset's training config (the demo's: 35
epochs, 2,000-frame batches, LR 2e-3 with 50 warm-up steps), the same shards (bundled FSDD sample:
1,020 train, 180 dev, 300 test recordings of spoken digits) -- so only the model differs. The dev
split picks the checkpoint, the test split measures it. Spoken digits are an easy task: this shows
whether a model can learn at all and how fast it gets there, not its LibriSpeech WER.

    python bench/accuracy.py [--presets tiny fast] [--epochs 35] [--out bench/out/accuracy.json]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from ds2stream.demo import run_demo
from ds2stream.presets import PRESETS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "fast"], choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, help="default: the recipe's (35)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/accuracy.json"))
    args = parser.parse_args()
    recipe = PRESETS["tiny"].train
    results = {}
    for name in args.presets:
        with tempfile.TemporaryDirectory() as work:
            started = time.perf_counter()
            result = run_demo(Path(work) / name, preset=name, epochs=args.epochs, train_config=recipe,
                              progress=False, log=lambda line, name=name: print(f"[{name}] {line}", flush=True))
            metrics = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
            epochs = [m for m in metrics if m.get("event") == "epoch_end"]
            results[name] = {
                "test_wer": result.report.wer, "test_cer": result.report.cer,
                "checkpoint": result.checkpoint.name,
                "best_dev_wer": min(m["dev_wer"] for m in epochs),
                "epochs": len(epochs),
                "train_seconds": result.stage_seconds["train"],
                "train_audio_seconds_per_second": sum(m["audio_seconds"] for m in epochs)
                / sum(m["seconds"] for m in epochs),
                "total_seconds": time.perf_counter() - started,
            }
        print(json.dumps({name: results[name]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\n{'preset':8s} {'test WER':>9s} {'test CER':>9s} {'train s':>8s} {'audio-s/s':>10s}")
    for name, r in results.items():
        print(f"{name:8s} {r['test_wer']:9.2%} {r['test_cer']:9.2%} {r['train_seconds']:8.0f} "
              f"{r['train_audio_seconds_per_second']:10.1f}")


if __name__ == "__main__":
    main()
