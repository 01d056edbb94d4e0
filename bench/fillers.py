"""What filler rows do to training: the demo's recipe (the tiny preset's, on the bundled sample)
trained once per filler rule, dev WER per epoch and the test WER/CER of the best-dev checkpoint.

Filler rows (mask 0) complete a bucket's last batch so that it keeps the bucket's shape. The loss
ignores them, BatchNorm does not: in training it normalises the batch by its own statistics and
moves its running statistics toward them. Rules compared (each selected by replacing
``BatchSampler._fillers``, the one place that draws fillers, in the child process that trains):
  bucket  -- other utterances of the bucket, drawn at random (ds2stream's rule);
  copies  -- one utterance of the bucket repeated (the rule before: copies of one row).

    python bench/fillers.py [--rules bucket copies] [--epochs 35]
"""
import argparse
import tempfile
from pathlib import Path

import harness
import numpy as np

from ds2stream.demo import run_demo
from ds2stream.pipeline import BatchSampler
from ds2stream.training.metrics import EpochEnd, read_records

BUCKET_RULE = BatchSampler._fillers  # kept: the "copies" rule draws its one row with it


def copies_of_one_row(self, in_bucket, lengths, frames, count, rng):
    return np.repeat(BUCKET_RULE(self, in_bucket, lengths, frames, min(count, 1), rng), count)


RULES = {"bucket": BUCKET_RULE, "copies": copies_of_one_row}


def train_with_rule(spec: dict) -> dict:
    """In a child process of its own (harness.call): the demo with this filler rule."""
    BatchSampler._fillers = RULES[spec["rule"]]
    with tempfile.TemporaryDirectory(prefix="ds2stream-bench-fillers-") as work:
        result = run_demo(Path(work) / "demo", epochs=spec["epochs"], progress=False, log=lambda *_: None)
        dev = [r.dev_wer for r in read_records(result.run_dir) if isinstance(r, EpochEnd)]
    return {"rule": spec["rule"], "test_wer": result.report.wer, "test_cer": result.report.cer,
            "best_dev_wer": min(dev), "mean_dev_wer_last_8_epochs": float(np.mean(dev[-8:])),
            "dev_wer_per_epoch": dev}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", nargs="+", choices=sorted(RULES), default=sorted(RULES))
    parser.add_argument("--epochs", type=int, default=None, help="default: the tiny preset's")
    args = parser.parse_args()
    results = []
    for rule in args.rules:
        results.append(harness.call(__file__, "train_with_rule", {"rule": rule, "epochs": args.epochs}))
        r = results[-1]
        print(f"{rule:8s} test WER {r['test_wer']:.2%} CER {r['test_cer']:.2%}  best dev WER {r['best_dev_wer']:.2%}"
              f"  mean dev WER of the last 8 epochs {r['mean_dev_wer_last_8_epochs']:.2%}  ({r['seconds']:.0f} s)")
    harness.save(Path(__file__).resolve().parent / "out" / "fillers.json", {"rules": results})


if __name__ == "__main__":
    main()
