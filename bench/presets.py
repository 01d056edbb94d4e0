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
from ds2stream.presets import get_preset
from ds2stream.training.config import EPOCHS_UNTIL_BUDGET, Preset, TrainConfig

#: One file per recipe, NAME.json (the two kinds and their keys: bench/recipes/README.md).
RECIPES_DIR = Path(__file__).resolve().with_name("recipes")
#: What every run of the bench sets: the budget of minutes ends it (the LR decays per epoch of steps
#: or over the budget's minutes, not over the epochs), and every checkpoint stays to be evaluated.
#: A resolved recipe holds these values; a recipe that is a preset as it is gets them here.
BUDGET_RUN = {"epochs": EPOCHS_UNTIL_BUDGET, "keep_last": 0}


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


def presets_of(data: dict) -> dict:
    """A result file's presets: at its top level as the bench writes it, or under "run" where a
    provenance block was put around the bench's output afterwards."""
    return data["presets"] if "presets" in data else data["run"]["presets"]


def results_of(files: dict[Path, dict]) -> dict:
    """The presets of result files as the table's rows: by name from one file, as "PRESET (FILE)"
    from several, in the files' order."""
    if len(files) == 1:
        return presets_of(next(iter(files.values())))
    return {f"{name} ({path.stem})": result for path, data in files.items()
            for name, result in presets_of(data).items()}


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


def checkpoints_report(results: dict) -> str:
    """The markdown table of every checkpoint: its step, training minutes and each set's CER."""
    sets = list(dict.fromkeys(name for result in results.values() for point in result["points"]
                              for name in point.get("sets", {"test": None})))
    lines = ["| preset | step | minutes | " + " | ".join(f"{name} CER" for name in sets) + " |",
             "|---|---:|---:|" + "---:|" * len(sets)]
    for name, result in results.items():
        for point in sorted(result["points"], key=lambda p: p["global_step"]):
            figures = point.get("sets", {"test": point})
            cers = " | ".join(f"{figures[s]['cer']:.1%}" if s in figures else "–" for s in sets)
            lines.append(f"| `{name}` | {point['global_step']:,} | {point['train_minutes']:.1f} | {cers} |")
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
