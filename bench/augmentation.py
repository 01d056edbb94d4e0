"""What augmentation buys: the same preset, data and budget with and without it.

``fsdd``: the `tiny` preset's demo recipe on the bundled sample (real speech: 1,020 train, 180 dev,
300 test recordings of spoken digits), trained without augmentation and with each setting asked
for, one after the other; test WER/CER of the checkpoint with the best dev WER.

``compare``: two runs on the sentence corpus (e.g. `ds2stream train --preset lean --no-augment`
and `--augment`), each evaluated at every kept checkpoint by bench/time_to_accuracy.py; prints the
unseen-voice CER of both at the same training minutes (the other run's CER interpolated linearly
between its checkpoints) and the relative reduction.

    python bench/augmentation.py fsdd [--variants none all] [--out bench/out/augment-fsdd.json]
    python bench/augmentation.py compare bench/out/tta-lean.json bench/out/tta-lean-aug.json
"""
import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

VARIANTS = ("none", "all", "speed", "volume", "noise", "spec_augment")


def augment_for(variant: str):
    from ds2stream.pipeline import AugmentConfig
    from ds2stream.pipeline.augment import switch

    if variant == "none":
        return AugmentConfig()
    if variant == "all":
        return switch(AugmentConfig(), everything=True)
    return switch(AugmentConfig(), **{variant: True})


def fsdd(args) -> None:
    from accuracy import demo_scores, write_table  # bench/accuracy.py: the demo recipe, scored

    from ds2stream.presets import PRESETS

    results = {variant: demo_scores(variant, "tiny", dataclasses.replace(PRESETS["tiny"].train,
                                                                         augment=augment_for(variant)))
               for variant in args.variants}
    write_table(results, "augmentation", args.out)


def compare(args) -> None:
    runs = [json.loads(path.read_text()) for path in (args.baseline, args.augmented)]
    points = [sorted(run["points"], key=lambda p: p["train_minutes"]) for run in runs]
    minutes = [np.array([p["train_minutes"] for p in run]) for run in points]
    cers = [np.array([p["cer"] for p in run]) for run in points]
    print(f"{'training min':>12s} {'CER without':>12s} {'CER with':>9s} {'relative':>9s}")
    for at, cer in zip(minutes[1], cers[1]):
        if minutes[0][0] <= at <= minutes[0][-1]:
            base = float(np.interp(at, minutes[0], cers[0]))
            print(f"{at:12.1f} {base:12.2%} {cer:9.2%} {cer / base - 1:+9.1%}")
    end = min(minutes[0][-1], minutes[1][-1])
    base, with_ = (float(np.interp(end, m, c)) for m, c in zip(minutes, cers))
    print(f"at the shorter run's end ({end:.1f} min): CER {base:.2%} without, {with_:.2%} with "
          f"({with_ / base - 1:+.1%}; the target is -15 %)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("fsdd", help="tiny on the bundled sample, with and without augmentation")
    one.add_argument("--variants", nargs="+", default=["none", "all"], choices=VARIANTS)
    one.add_argument("--out", type=Path, default=Path("bench/out/augment-fsdd.json"))
    two = commands.add_parser("compare", help="two time-to-accuracy results at equal training time")
    two.add_argument("baseline", type=Path, help="bench/time_to_accuracy.py --out of the run without")
    two.add_argument("augmented", type=Path, help="... and of the run with augmentation")
    args = parser.parse_args()
    fsdd(args) if args.command == "fsdd" else compare(args)


if __name__ == "__main__":
    main()
