"""Time to accuracy of every preset under one training budget: the question behind "one epoch takes
50 hours" is how much CPU time a given accuracy costs.

Each recipe (bench/recipes/NAME.json: a preset's whole config, or a preset as it is today)
trains for --budget minutes of training steps (`ds2stream train --max-minutes`: compiled steps and
data waits counted, dev evaluation and checkpoint writes not), one after the other, never side by
side, each in its own process (its peak resident memory is measured) with its log beside its run
directory; then every checkpoint it kept is evaluated on the held-out sets (greedy,
bench/time_to_accuracy.py): the corpus's test voices and real speech (`--test corpus=...
real-dev=... fsdd=...`; the first set is the primary one, whose CER the
thresholds and the plot read). `--budget-of lean=60` gives one preset a
longer budget; `--continue stream=RUN_DIR` continues an earlier run of the same recipe when its LR
decays per epoch of steps (a longer run is then the shorter one continued; a linear schedule ends
with the run's own budget, so `lean`'s runs cannot be continued). Results go to --out as each
preset finishes, and a re-run skips presets already there. `--report` prints the table and draws
the plot from that file.

    python bench/presets.py --train shards/train --dev shards/dev --runs runs/presets \
        --test corpus=shards/test real-dev=shards/real-dev fsdd=shards/fsdd-test \
        [--presets zoo fast small lean] [--budget 30] [--budget-of lean=60] [--out bench/out/presets.json]
    python bench/presets.py --report bench/out/presets.json [--plot docs/presets.png]
"""
import argparse
import dataclasses
import json
from pathlib import Path

import harness
from time_to_accuracy import (
    THRESHOLDS,
    evaluate_run,
    minutes_to_reach,
    named_sets,
    training_seconds,
    training_throughput,
)

from ds2stream.errors import ConfigError
from ds2stream.model import ModelConfig
from ds2stream.pipeline.augment import STANDARD_AUGMENT
from ds2stream.presets import get_preset, zoo_kernels_4x
from ds2stream.training.config import EPOCHS_UNTIL_BUDGET, Preset, TrainConfig

#: One file per recipe, NAME.json (the two kinds and their keys: bench/recipes/README.md).
RECIPES_DIR = Path(__file__).resolve().with_name("recipes")
#: What every run of the bench sets: the budget of minutes ends it (the LR decays per epoch of steps
#: or over the budget's minutes, not over the epochs), and every checkpoint stays to be evaluated.
#: A resolved recipe holds these values; a recipe that is a preset as it is gets them here.
BUDGET_RUN = {"epochs": EPOCHS_UNTIL_BUDGET, "keep_last": 0}

EXPONENTIAL = {"lr_schedule": "exponential", "learning_rate": 8e-4}  # lean's schedule before
#: lean's convs before (the zoo's kernel sizes at 16 channels): every lean recipe measured with them
#: keeps them, so each reproduces its report.
ZOO_KERNELS = {"model": {"conv": [dataclasses.asdict(layer) for layer in zoo_kernels_4x(16)]}}
#: lean before 3x time subsampling, dropout and weight decay (its convs strided time 2 x 2): every
#: lean recipe measured before keeps it (`before_3x`), so each reproduces its report.
LEAN_4X = {"conv": [{"channels": 16, "kernel": [11, 5], "stride": [2, 2], "padding": [5, 2]}] * 2, "dropout": 0.0}


REAL_CHECKPOINTS = {"checkpoint_every": 500}
ROOMS = {**STANDARD_AUGMENT.to_dict(), "reverb_prob": 0.5, "channel_prob": 0.5}
SLOWER = {**STANDARD_AUGMENT.to_dict(), "speeds": (0.7, 0.8, 0.9, 1.0, 1.1)}
RANGE_60DB = {"scale": "mel", "n_mels": 80, "normalize": "per_bin_mean", "dynamic_range_db": 60.0}


def before_3x(recipe: dict) -> dict:
    """A lean recipe as measured before lean took 3x time subsampling, dropout and weight decay."""
    return {"weight_decay": 0.0, **recipe, "model": {**LEAN_4X, **recipe.get("model", {})}}


#: Per preset, what differs from its own defaults. Every run sets `epochs` high enough that the
#: budget ends it; that changes nothing else, as the LR decays per epoch of steps or over the
#: budget's minutes, not over the epochs.
RECIPES = {
    # The seed's recipe: every batch 8 utterances padded to 1,250 frames, the zoo's LR and warm-up
    # (500 steps), no augmentation. Its steps are long: a checkpoint every 10.
    "zoo": {"batch_mode": "fixed", "checkpoint_every": 10},
    # fast and small as lean found best for a budget of minutes: 8,000-frame batches (more updates)
    # and a 100-step warm-up (their 500 would be most of a 30-minute run); their own LR, augmentation.
    "fast": {"max_frames": 8000, "warmup_steps": 100, "checkpoint_every": 20},
    "small": {"max_frames": 8000, "warmup_steps": 100, "checkpoint_every": 20},
    "lean": {},  # the preset as it is: 3x subsampling, dropout, weight decay, 8,000-frame batches, 100
    # warm-up steps, 3.2e-3 falling to 0, augmentation
    "tiny": {},
    "stream": {},  # the preset as it is: lean's recipe, forward-only with a lookahead, sliding-mean features
    # Levers against unseen voices, each a recipe of another preset ("preset"), measured with the
    # schedule lean had then (8e-4, 0.8x per epoch of steps: "lean-exponential"): lean with the
    # linear spectrogram it had before, and lean with speaker augmentation on top; then lean's LR
    # falling linearly to 0 at the budget's end from 1x, 2x and 8x that peak (lean itself: 4x)
    # (docs/results/unseen-voices.md).
    "lean-exponential": before_3x({"preset": "lean", **ZOO_KERNELS, **EXPONENTIAL}),
    "lean-linear": before_3x({"preset": "lean", **ZOO_KERNELS, **EXPONENTIAL,
                              "features": {"scale": "linear", "normalize": "utterance"}}),
    "lean-vtlp": before_3x({"preset": "lean", **ZOO_KERNELS, **EXPONENTIAL,
                            "augment": {**STANDARD_AUGMENT.to_dict(), "vtlp": 0.1, "channel_prob": 0.3}}),
    "lean-anneal": before_3x({"preset": "lean", **ZOO_KERNELS, "learning_rate": 8e-4}),
    "lean-anneal-2x": before_3x({"preset": "lean", **ZOO_KERNELS, "learning_rate": 1.6e-3}),
    "lean-anneal-8x": before_3x({"preset": "lean", **ZOO_KERNELS, "learning_rate": 6.4e-3}),
    # lean with each utterance's pitch shifted, tempo kept, by up to 3 semitones either way
    "lean-pitch": before_3x({"preset": "lean", **ZOO_KERNELS,
                             "augment": {**STANDARD_AUGMENT.to_dict(), "pitch_shift": 3.0}}),
    # lean with SpecAugment's time masks as LibriSpeech recipes set them (Lhotse: up to 15 % of the
    # frames masked): one per second of audio, each up to 5 % of the utterance (lean: 0.5, 4 %)
    "lean-masks": before_3x({"preset": "lean", **ZOO_KERNELS, "augment": {
        **STANDARD_AUGMENT.to_dict(), "time_masks_per_second": 1.0, "time_mask_fraction": 0.05}}),
    # lean with the speaker augmentation lean-vtlp had, under lean's schedule: measured on real
    # speakers (FSDD) as well as on the synthetic test voices, where it had given nothing
    "lean-speaker": before_3x({"preset": "lean", **ZOO_KERNELS,
                               "augment": {**STANDARD_AUGMENT.to_dict(), "vtlp": 0.1, "channel_prob": 0.3}}),
    # lean with half the utterances played in a simulated room: synthetic voices are dry, real
    # recordings are not
    "lean-reverb": before_3x({"preset": "lean", **ZOO_KERNELS,
                              "augment": {**STANDARD_AUGMENT.to_dict(), "reverb_prob": 0.5}}),
    # lean with a front end of less arithmetic: both convs 11 mel rows by 5 frames instead of the
    # zoo's kernel sizes (41 x 11, then 21 x 11, sized for 161 linear bins), the same strides and
    # channels. Measured as "lean-k11x5"; now lean itself, and lean before is "lean-zoo-kernels".
    "lean-zoo-kernels": before_3x({"preset": "lean", **ZOO_KERNELS}),
    # lean with each RNN layer's outputs dropped with probability 0.2 in training (as ESPnet's RNN
    # encoders): 60 minutes are 16 passes over a 6-hour corpus, and the unheard voices stall while
    # the training loss falls
    "lean-dropout": before_3x({"preset": "lean", "model": {"dropout": 0.2}}),
    # lean-dropout with VTLP 0.1 (a vocal tract length drawn per utterance): the training corpus
    # has few natural voices of a short vocal tract, and a run of 16 passes is long enough for an
    # augmentation to pay where 30 minutes were not
    "lean-dropout-vtlp": before_3x({"preset": "lean", "model": {"dropout": 0.2},
                                    "augment": {**STANDARD_AUGMENT.to_dict(), "vtlp": 0.1}}),
    # lean-dropout with LSTMs of 192 and 40 mel bands: 1.64x the audio per step-second (measured
    # alone), and twice the steps took 2-3 points off before; measured: it lost (25.9 against 21.7 %
    # test CER in 60 minutes), the capacity given up costs more than the steps gained
    "lean-dropout-small": before_3x({"preset": "lean", "model": {"dropout": 0.2, "rnn_hidden": 192},
                                     "features": {"scale": "mel", "n_mels": 40, "normalize": "per_bin"}}),
    # lean-dropout with decoupled weight decay 0.1 (AdamW): under lean's schedule the weights of a
    # 60-minute run would shrink by about half were no gradient to hold them, a regulariser of 16
    # passes over one corpus that costs no arithmetic; measured at equal steps (3,677): 23.0 against
    # 23.9 % test CER, within the noise of runs; for 60 minutes 21.1 % (5,033 steps), 1.1 points
    # ahead of lean-dropout at step 5,000
    "lean-dropout-wd": before_3x({"preset": "lean", "model": {"dropout": 0.2}, "weight_decay": 0.1}),
    # lean-dropout-wd with dropout 0.3: more regularisation for 16 passes over one corpus; measured:
    # 0.4-1.9 points of test CER behind dropout 0.2 at every 500th step of 60 minutes but one, 21.3
    # against 21.1 % at the end (5,060 and 5,033 steps)
    "lean-dropout3-wd": before_3x({"preset": "lean", "model": {"dropout": 0.3}, "weight_decay": 0.1}),
    # lean-dropout-wd with LSTMs of 320 instead of 256: the smaller model (LSTM-192, 40 bands) lost
    # 4.2 points for 1.44x the steps, so the hour may be short of capacity rather than of updates;
    # measured: 0.85x the audio per step-second, no better at equal steps, 22.2 against 21.1 % in 60 min
    "lean-dropout-wd-320": before_3x({"preset": "lean", "model": {"dropout": 0.2, "rnn_hidden": 320},
                                      "weight_decay": 0.1}),
    # lean-dropout-wd with 3x time subsampling instead of 4x (the first conv strides time by 3, the
    # second not): DeepSpeech2 found strides above 2 cost English character outputs accuracy; the
    # corpus's voices read 12-22 characters a second (the test voices 17-20), and at 4x the median
    # test sentence leaves CTC 1.2-1.5 output frames per label position (characters, and a blank
    # between doubled letters). Measured as "lean-dropout-wd-3x" (19.3 against 21.1 % test CER in 60
    # minutes); now lean itself, and lean before is "lean-4x"
    "lean-4x": before_3x({"preset": "lean"}),
    # lean with global CMVN (ESPnet's and WeNet's): each mel row's mean and std over the training
    # set instead of over each utterance; causal, as streaming needs, but it keeps each recording's
    # own speaker and channel average, which per-utterance normalisation removes; measured: 1.4-2.4
    # points of test CER worse at every checkpoint of 30 minutes (26.9 against 25.4 %)
    "lean-global": before_3x({"preset": "lean", "features": {"scale": "mel", "n_mels": 80, "normalize": "global"}}),
    # Levers for real speech (docs/results/real-speech.md), each lean as it is, scored on the corpus's
    # held-out engine, real-dev and FSDD; a checkpoint every 500 steps (three sets to evaluate each).
    # Real speakers in the mix are a change of --train, not of recipe.
    "real-lean": {"preset": "lean", **REAL_CHECKPOINTS},
    # rooms and microphones: half the utterances in a simulated room, half through a random channel
    # (a tilt, and on half of those a band limit down to 3 kHz): synthetic voices are dry and full-band
    "real-rooms": {"preset": "lean", **REAL_CHECKPOINTS, "augment": ROOMS},
    # mel energies floored 60 dB under the utterance's loudest, each row's mean removed and one std
    # over the utterance: FSDD's band above 4 kHz (8 kHz recordings; 70 dB under the speech) stays
    # near 0 instead of the unit-variance noise that per-row normalisation makes of it
    "real-range": {"preset": "lean", **REAL_CHECKPOINTS, "features": RANGE_60DB},
    "real-rooms-range": {"preset": "lean", **REAL_CHECKPOINTS, "augment": ROOMS, "features": RANGE_60DB},
    # slower speech: real-dev's reader says 11.9 characters a second (median), the training voices
    # 15-16.5; speed perturbation down to 0.7x (Kaldi's 0.9-1.1 reach 13.5 at the slowest)
    "real-slow": {"preset": "lean", **REAL_CHECKPOINTS, "augment": SLOWER},
}


def recipe_names() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.json"))


def load_recipe(name: str) -> Preset:
    """bench/recipes/NAME.json as the preset a run starts from: its model and training configs as
    written, or (``"preset"``) that preset of ds2stream.presets as it is today, run as BUDGET_RUN says."""
    path = RECIPES_DIR / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"no recipe {name!r}: {path} is missing; recipes: {', '.join(recipe_names())}")
    recipe = json.loads(path.read_text())
    settings = {"preset"} if "preset" in recipe else {"model", "train"}
    if settings - set(recipe) or set(recipe) - settings - {"why", "measured"}:
        raise ConfigError(f"{path}: a recipe has either \"preset\" or both \"model\" and \"train\", and may have "
                          f"\"why\" and \"measured\" (bench/recipes/README.md); it has {sorted(recipe)}")
    if "preset" in recipe:
        preset = get_preset(recipe["preset"])
        return Preset(name, preset.model, dataclasses.replace(preset.train, **BUDGET_RUN))
    return Preset(name, ModelConfig.from_dict(recipe["model"]), TrainConfig.from_dict(recipe["train"]))


def train_one(spec: dict) -> None:
    """In a child process of its own (harness.call): one recipe's run for its budget."""
    from ds2stream.runtime import quiet_framework_logs
    from ds2stream.training.trainer import run_training

    quiet_framework_logs(False)
    continued = spec.get("continue")
    run_training(run_dir=None if continued else Path(spec["run_dir"]),
                 resume_dir=Path(continued) if continued else None,
                 shards=Path(spec["train"]), dev_shards=Path(spec["dev"]), preset=load_recipe(spec["preset"]),
                 overrides={}, max_minutes=spec["minutes"], progress=True)


def run_preset(args, preset: str) -> dict:
    budget = dict(args.budget_of).get(preset, args.budget)
    continued = dict(args.continue_run).get(preset)
    run_dir = Path(continued) if continued else args.runs / preset
    metrics = run_dir / "metrics.jsonl"
    trained = max(training_seconds(run_dir).values(), default=0.0) / 60 if metrics.exists() else 0.0
    if continued:
        minutes = budget - trained  # its minutes so far count against the budget
    elif not run_dir.exists():
        minutes = budget
    elif trained >= budget:  # trained by an earlier bench that stopped before evaluating it
        minutes = 0.0
    else:
        raise SystemExit(f"{run_dir} exists: remove it, or give --continue {preset}={run_dir}")
    spec = {"preset": preset, "run_dir": str(run_dir), "continue": continued and str(continued),
            "train": str(args.train), "dev": str(args.dev), "minutes": minutes}
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.log"
    peak = None
    if minutes > 0:
        print(f"{preset}: {minutes:.1f} min of training into {run_dir} (log: {log_path})", flush=True)
        peak = harness.call(__file__, "train_one", spec, log=log_path)["peak_rss_mb"] / 1e3
    else:
        print(f"{preset}: {run_dir} already trained for {trained:.1f} min; evaluating it", flush=True)
    points = evaluate_run(run_dir, args.test)
    recipe = load_recipe(preset)  # as read: a file of bench/recipes/ that runs it again
    return {"preset": preset, "recipe": {"model": recipe.model.to_dict(), "train": recipe.train.to_dict()},
            "budget_minutes": budget, "run_dir": str(run_dir),
            "peak_rss_gb": peak, "throughput": training_throughput(run_dir), "points": points}


def run_presets(args) -> dict:
    """Every preset of ``args.presets`` not yet in ``args.out``, one after the other; the results so
    far saved after each."""
    args.budget_of = [(name, float(value)) for name, value in args.budget_of]
    from ds2stream.runtime import quiet_framework_logs, use_graph_mode

    quiet_framework_logs(False)
    use_graph_mode()
    results = json.loads(args.out.read_text())["presets"] if args.out.exists() else {}
    for preset in args.presets:
        if preset in results:
            print(f"{preset}: already in {args.out}, skipped")
            continue
        results[preset] = run_preset(args, preset)
        harness.save(args.out, {"train": str(args.train), "dev": str(args.dev), "tests": named_sets(args.test),
                                "presets": results})
    return results


def results_of(files: dict[Path, dict]) -> dict:
    """The presets of result files as the table's rows: by name from one file, as "PRESET (FILE)"
    from several, in the files' order."""
    if len(files) == 1:
        return next(iter(files.values()))["presets"]
    return {f"{name} ({path.stem})": result for path, data in files.items() for name, result in data["presets"].items()}


def report(results: dict) -> str:
    """The markdown table: minutes to each CER, every held-out set's CER at the budget's end."""
    heads = " | ".join(f"min to CER ≤ {t:.0%}" for t in THRESHOLDS)
    # every held-out set's CER / WER at the run's end (older results have one set, "test")
    sets = list(dict.fromkeys(name for result in results.values() for point in result["points"]
                              for name in point.get("sets", {"test": None})))
    set_heads = " | ".join(f"{name} CER / WER at the end" for name in sets)
    lines = [f"| preset | budget (min) | steps (a minute) | audio-s per step-s | {heads} | {set_heads} "
             "| best primary CER | peak RSS |",
             "|---|---:|---:|---:|" + "---:|" * len(THRESHOLDS) + "---:|" * len(sets) + "---:|---:|"]
    for name, result in results.items():
        points = sorted(result["points"], key=lambda p: p["train_minutes"])
        reach = " | ".join(f"{m:.1f}" if (m := minutes_to_reach(points, t)) is not None else "not reached"
                           for t in THRESHOLDS)
        end, best = points[-1], min(points, key=lambda p: p["cer"])
        figures = end.get("sets", {"test": end})
        at_end = " | ".join(f"{figures[s]['cer']:.1%} / {figures[s]['wer']:.1%}" if s in figures else "–" for s in sets)
        peak = "not measured" if result["peak_rss_gb"] is None else f"{result['peak_rss_gb']:.1f} GB"
        pace = f"{end['global_step']} ({end['global_step'] / max(end['train_minutes'], 1e-9):.0f})"
        speed = result.get("throughput", {}).get("audio_seconds_per_step_second")
        speed = "–" if speed is None else f"{speed:.1f}"
        lines.append(f"| `{name}` | {result['budget_minutes']:g} | {pace} | {speed} | {reach} | {at_end} "
                     f"| {best['cer']:.1%} | {peak} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """The curves: the primary set's CER against training minutes, one per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for name, result in results.items():
        points = sorted(result["points"], key=lambda p: p["train_minutes"])
        axis.plot([p["train_minutes"] for p in points], [100 * p["cer"] for p in points], marker="o",
                  markersize=3, label=name)
    for threshold in THRESHOLDS:
        axis.axhline(100 * threshold, color="grey", linewidth=0.5, linestyle=":")
    axis.set_xlabel("training minutes (summed step times, 2 cores)")
    axis.set_ylabel("CER on the primary held-out set, greedy (%)")
    axis.set_ylim(0, 105)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"plot: {path}")


def pairs(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if name not in recipe_names() or not value:
        raise argparse.ArgumentTypeError(f"expected PRESET=VALUE with a recipe of {RECIPES_DIR}: {text!r}")
    return name, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path)
    parser.add_argument("--dev", type=Path)
    parser.add_argument("--test", nargs="+", metavar="[NAME=]PATH",
                        help="held-out sets, the primary one first (a bare path is named test)")
    parser.add_argument("--runs", type=Path, default=Path("runs/presets"))
    parser.add_argument("--presets", nargs="+", default=["zoo", "fast", "small", "lean"], choices=recipe_names(),
                        metavar="NAME", help="recipes, each bench/recipes/NAME.json")
    parser.add_argument("--budget", type=float, default=30.0, help="minutes of training steps per preset")
    parser.add_argument("--budget-of", type=pairs, action="append", default=[], metavar="PRESET=MINUTES")
    parser.add_argument("--continue", dest="continue_run", type=pairs, action="append", default=[],
                        metavar="PRESET=RUN_DIR")
    parser.add_argument("--out", type=Path, default=Path("bench/out/presets.json"))
    parser.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                        help="print the table (and --plot) of result files (rows of several: PRESET (FILE))")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    if args.report:
        results = results_of({path: json.loads(path.read_text()) for path in args.report})
    elif args.train and args.dev and args.test:
        results = run_presets(args)
    else:
        parser.error("--train, --dev and --test are needed to run the bench")
    print(report(results))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
