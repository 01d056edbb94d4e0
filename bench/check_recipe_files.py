"""One-off, for the move of bench/presets.py's recipes from diffs (RECIPES) to files: ``--write``
resolves every recipe of RECIPES as train_one resolved it and writes bench/recipes/NAME.json;
``--check`` runs both train_ones (train_one_from_diffs below, train_one of bench/presets.py reading
the files) through ds2stream's own run_training, up to the Trainer it would build (a stand-in that
records its arguments), and compares what each Trainer gets: model config, train config, paths.

    python bench/check_recipe_files.py --write
    python bench/check_recipe_files.py --check [--budget 30]
"""
import argparse
import contextlib
import json
import re
from pathlib import Path

import presets

from ds2stream.presets import get_preset
from ds2stream.training import trainer

#: A name the reports run that RECIPES no longer has: measured at 7c25ed0 as lean with weight decay
#: 0.1, dropout 0.2 and 3x time subsampling, `lean` itself since b4bf304, equal in every setting.
RENAMED = {"lean-dropout-wd-3x": {"preset": "lean"}}

#: Per recipe, why it exists and the report that measured it (none: not measured yet).
WHY = {
    "zoo": ("The seed's recipe: every batch 8 utterances padded to 1,250 frames, the zoo's LR and "
            "warm-up (500 steps), no augmentation. Its steps are long: a checkpoint every 10.",
            "docs/results/sentences-presets.md"),
    "fast": ("fast as lean found best for a budget of minutes: 8,000-frame batches (more updates) and a "
             "100-step warm-up (its 500 would be most of a 30-minute run); its own LR, augmentation.",
             "docs/results/sentences-presets.md"),
    "small": ("small as lean found best for a budget of minutes: 8,000-frame batches (more updates) and a "
              "100-step warm-up (its 500 would be most of a 30-minute run); its own LR, augmentation.",
              "docs/results/sentences-presets.md"),
    "lean": ("The preset as it is.", None),
    "tiny": ("The preset as it is.", None),
    "stream": ("The preset as it is: lean's recipe, forward-only with a lookahead, sliding-mean features.",
               None),
    "lean-exponential": ("lean as the first levers against unseen voices were measured against: the zoo's "
                         "kernel sizes at 16 channels, 4x time subsampling, no dropout or weight decay, "
                         "the LR 8e-4 decaying 0.8x per epoch of steps.", "docs/results/unseen-voices.md"),
    "lean-linear": ("lean-exponential with the linear spectrogram lean had before, normalised per "
                    "utterance.", "docs/results/unseen-voices.md"),
    "lean-vtlp": ("lean-exponential with speaker augmentation on top: VTLP 0.1 and a random channel on "
                  "30 % of the utterances.", "docs/results/unseen-voices.md"),
    "lean-anneal": ("lean-exponential's peak LR (8e-4) falling linearly to 0 at the budget's end.",
                    "docs/results/unseen-voices.md"),
    "lean-anneal-2x": ("lean-anneal from twice the peak (lean itself: 4x).", "docs/results/unseen-voices.md"),
    "lean-anneal-8x": ("lean-anneal from 8x the peak (lean itself: 4x).", "docs/results/unseen-voices.md"),
    "lean-pitch": ("lean (4x time subsampling, the zoo's kernel sizes) with each utterance's pitch shifted, "
                   "tempo kept, by up to 3 semitones either way.", "docs/results/unseen-voices.md"),
    "lean-masks": ("lean (4x, the zoo's kernel sizes) with SpecAugment's time masks as LibriSpeech recipes "
                   "set them (Lhotse: up to 15 % of the frames masked): one per second of audio, each up "
                   "to 5 % of the utterance (lean: 0.5, 4 %).", "docs/results/unseen-voices.md"),
    "lean-speaker": ("lean (4x, the zoo's kernel sizes) with the speaker augmentation lean-vtlp had, under "
                     "lean's linear schedule: on real speakers (FSDD) as well as on the synthetic test "
                     "voices.", "docs/results/unseen-voices.md"),
    "lean-reverb": ("lean (4x, the zoo's kernel sizes) with half the utterances played in a simulated room: "
                    "synthetic voices are dry, real recordings are not.", "docs/results/unseen-voices.md"),
    "lean-zoo-kernels": ("lean before its 11 x 5 convs (measured against them as lean-k11x5): the zoo's "
                         "kernel sizes (41 x 11, then 21 x 11, sized for 161 linear bins) at 16 channels, "
                         "the same strides, 4x time subsampling.", "docs/results/unseen-voices.md"),
    "lean-dropout": ("lean (4x) with each RNN layer's outputs dropped with probability 0.2 in training (as "
                     "ESPnet's RNN encoders): 60 minutes are 16 passes over a 6-hour corpus, and the unheard "
                     "voices stalled while the training loss fell.", "docs/results/unseen-voices.md"),
    "lean-dropout-vtlp": ("lean-dropout with VTLP 0.1 (a vocal tract length drawn per utterance): the "
                          "training corpus has few natural voices of a short vocal tract, and a run of 16 "
                          "passes may be long enough for an augmentation to pay.",
                          "docs/results/unseen-voices.md"),
    "lean-dropout-small": ("lean-dropout with LSTMs of 192 and 40 mel bands: more steps in the budget for "
                           "less capacity.", "docs/results/unseen-voices.md"),
    "lean-dropout-wd": ("lean-dropout with decoupled weight decay 0.1 (AdamW): a regulariser for 16 passes "
                        "over one corpus that costs no arithmetic (under lean's schedule a 60-minute run "
                        "would shrink the weights by about half were no gradient to hold them).",
                        "docs/results/unseen-voices.md"),
    "lean-dropout3-wd": ("lean-dropout-wd with dropout 0.3: more regularisation for 16 passes over one "
                         "corpus.", "docs/results/unseen-voices.md"),
    "lean-dropout-wd-320": ("lean-dropout-wd with LSTMs of 320 instead of 256: the smaller model "
                            "(lean-dropout-small) lost, so the hour may be short of capacity rather than "
                            "of updates.", "docs/results/unseen-voices.md"),
    "lean-dropout-wd-3x": ("lean-dropout-wd with 3x time subsampling instead of 4x (the first conv strides "
                           "time by 3, the second not): DeepSpeech2 found strides above 2 cost English "
                           "character outputs accuracy, and at 4x the fast test voices leave CTC few output "
                           "frames per label position. Measured under this name at 7c25ed0; lean itself "
                           "since b4bf304, and this file keeps it as measured.",
                           "docs/results/unseen-voices.md"),
    "lean-4x": ("lean before 3x time subsampling, dropout and weight decay: both convs stride time by 2.",
                "docs/results/unseen-voices.md"),
    "lean-global": ("lean (4x) with global CMVN (ESPnet's and WeNet's): each mel row's mean and std over "
                    "the training set instead of over each utterance; causal, as streaming needs, but it "
                    "keeps each recording's own speaker and channel average, which per-utterance "
                    "normalisation removes.", "docs/results/unseen-voices.md"),
    "real-lean": ("lean as it was on 2026-12-07, scored on the corpus's held-out engine, real-dev and FSDD; "
                  "a checkpoint every 500 steps (three sets to evaluate each). Real speakers in the mix are "
                  "a change of --train, not of recipe.", "docs/results/real-speech.md"),
    "real-rooms": ("real-lean with rooms and microphones: half the utterances in a simulated room, half "
                   "through a random channel (a tilt, and on half of those a band limit down to 3 kHz): "
                   "synthetic voices are dry and full-band.", "docs/results/real-speech.md"),
    "real-range": ("real-lean with mel energies floored 60 dB under the utterance's loudest, each row's "
                   "mean removed and one std over the utterance: FSDD's band above 4 kHz (8 kHz "
                   "recordings) stays near 0 instead of the unit-variance noise that per-row "
                   "normalisation makes of it.", "docs/results/real-speech.md"),
    "real-rooms-range": ("real-rooms and real-range together.", None),
    "real-slow": ("real-lean with slower speech: real-dev's reader is slower than every training voice; "
                  "speed perturbation down to 0.7x (Kaldi's 0.9-1.1 stay faster than that reader).",
                  "docs/results/real-speech.md"),
}


def train_one_from_diffs(spec: dict) -> None:
    """bench/presets.py's train_one before the files (1d086fd), as it was but for RECIPES' module."""
    from ds2stream.runtime import quiet_framework_logs
    from ds2stream.training.trainer import run_training

    quiet_framework_logs(False)
    continued, recipe = spec.get("continue"), {**presets.RECIPES, **RENAMED}[spec["preset"]]
    overrides = {k: v for k, v in recipe.items() if k not in ("preset", "model")}
    run_training(run_dir=None if continued else Path(spec["run_dir"]),
                 resume_dir=Path(continued) if continued else None,
                 shards=Path(spec["train"]), dev_shards=Path(spec["dev"]),
                 preset=get_preset(recipe.get("preset", spec["preset"])),
                 overrides={**overrides, "epochs": presets.EPOCHS_UNTIL_BUDGET, "keep_last": 0},
                 model_changes=recipe.get("model"),
                 max_minutes=spec["minutes"], progress=True)


class Built(Exception):
    """Raised by the stand-in Trainer with the arguments run_training gave it."""


class RecordingTrainer:
    def __init__(self, *args):
        raise Built(args)


@contextlib.contextmanager
def up_to_the_trainer():
    """run_training as it is, without MindSpore's context, without feature statistics from shards
    (lean-global's are computed at the run's start from its shards, alike for both), and stopping
    where it would build the Trainer."""
    saved = {name: getattr(trainer, name) for name in ("Trainer", "use_graph_mode", "with_feature_statistics")}
    trainer.Trainer, trainer.use_graph_mode = RecordingTrainer, lambda graph=True: None
    trainer.with_feature_statistics = lambda config, *args, **kwargs: config
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(trainer, name, value)


def trainer_arguments(train_one, name: str, minutes: float | None) -> tuple:
    """(run_dir, shards, model config, train config, dev shards, rank, world size, progress)."""
    spec = {"preset": name, "run_dir": f"runs/{name}", "continue": None, "train": "shards/train",
            "dev": "shards/dev", "minutes": minutes}
    with up_to_the_trainer():
        try:
            train_one(spec)
        except Built as built:
            return built.args[0]
    raise AssertionError(f"{name}: run_training built no Trainer")


def write() -> None:
    """Every recipe as train_one resolved it with no budget (a run adds its own): a preset as it is
    where the recipe is one ({}), else the whole model and train configs."""
    presets.RECIPES_DIR.mkdir(exist_ok=True)
    for name, recipe in {**presets.RECIPES, **RENAMED}.items():
        why, measured = WHY[name]
        head = {"why": why, **({"measured": measured} if measured else {})}
        if not recipe:
            body = {"preset": name}
        else:
            _, _, model, train, *_ = trainer_arguments(train_one_from_diffs, name, None)
            body = {"model": model.to_dict(), "train": train.to_dict()}
        path = presets.RECIPES_DIR / f"{name}.json"
        text = json.dumps({**head, **body}, indent=1)
        # lists of numbers on one line: [11, 5], [0.9, 1.0, 1.1]
        text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]", text)
        path.write_text(text + "\n")
        print(f"{path}: {'the preset as it is' if 'preset' in body else 'resolved'}")


def check(budget: float) -> int:
    """0 if for every recipe (both with a budget and without) both train_ones give the Trainer the
    same arguments, compared as configs and as their JSON; else 1, naming each that differs."""
    names = list({**presets.RECIPES, **RENAMED})
    missing = sorted(set(names) ^ set(presets.recipe_names()))
    differ = []
    for name in names:
        for minutes in (budget, None):
            before = trainer_arguments(train_one_from_diffs, name, minutes)
            after = trainer_arguments(presets.train_one, name, minutes)
            as_json = [[arguments[2].to_dict(), arguments[3].to_dict()] for arguments in (before, after)]
            if before != after or as_json[0] != as_json[1]:
                differ.append(f"{name} (minutes {minutes})")
                print(f"{name}, minutes {minutes}: DIFFERS\n  before {before}\n  after  {after}")
    if missing:
        print(f"recipes in RECIPES or files only: {missing}")
    print(f"{len(names)} recipes, each with a budget of {budget:g} min and without: "
          f"{'every one identical' if not differ else 'differ: ' + ', '.join(differ)}")
    return 1 if differ or missing else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--budget", type=float, default=30.0)
    args = parser.parse_args()
    if args.write:
        write()
    if args.check:
        raise SystemExit(check(args.budget))


if __name__ == "__main__":
    main()
