"""The recipes of bench/presets.py (bench/recipes/NAME.json): each loads into valid configs, holds
them whole, names the report it was measured in; every recipe a report's command runs is a file."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from ds2stream.errors import ConfigError
from ds2stream.model import ModelConfig
from ds2stream.presets import PRESETS
from ds2stream.training.config import TrainConfig

REPOSITORY = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPOSITORY / "bench" / "recipes").glob("*.json"))
#: The recipes that name the report they were measured in (a preset as it is, or one not yet run, none).
MEASURED = [path for path in RECIPES if "measured" in json.loads(path.read_text())]
REPORTS = sorted((REPOSITORY / "docs" / "results").glob("*.md"))
#: `--presets NAME ...` in a report, and the bench scripts named before it (the last one runs it).
PRESETS_FLAG = re.compile(r"--presets((?: [a-z0-9][\w.-]*)+)")
SCRIPT = re.compile(r"bench/(\w+)\.py")


@pytest.fixture(scope="module")
def bench_presets():
    """bench/presets.py as a module, as harness.call loads it (its folder on the path)."""
    sys.path.insert(0, str(REPOSITORY / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("bench_presets", REPOSITORY / "bench" / "presets.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(REPOSITORY / "bench"))


def recipes_run_by_reports() -> dict[str, list[str]]:
    """Every recipe a report runs with bench/presets.py --presets, and the reports that do."""
    run = {}
    for report in REPORTS:
        text = report.read_text()
        for flag in PRESETS_FLAG.finditer(text):
            scripts = SCRIPT.findall(text, 0, flag.start())
            if scripts and scripts[-1] == "presets":
                for name in flag[1].split():
                    run.setdefault(name, []).append(report.name)
    return run


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_recipe_loads_into_valid_configs(bench_presets, path):
    preset = bench_presets.load_recipe(path.stem)
    assert isinstance(preset.model, ModelConfig) and isinstance(preset.train, TrainConfig)
    assert preset.train.epochs == bench_presets.EPOCHS_UNTIL_BUDGET and preset.train.keep_last == 0
    recipe = json.loads(path.read_text())
    assert recipe["why"].strip(), f"{path.name}: say why the recipe exists"
    if "preset" in recipe:  # the preset as it is today, on purpose
        assert recipe["preset"] in PRESETS
    else:  # whole: every field written, as the configs write themselves (features, augmentation inside)
        assert recipe["model"] == json.loads(json.dumps(preset.model.to_dict()))
        assert recipe["train"] == json.loads(json.dumps(preset.train.to_dict()))
        assert recipe["train"]["schedule_minutes"] is None, "a run's budget sets it"


@pytest.mark.parametrize("path", MEASURED, ids=lambda path: path.stem)
def test_recipe_names_the_report_that_measured_it(path):
    measured = json.loads(path.read_text())["measured"]
    report = REPOSITORY / measured
    assert report.is_file(), f"{path.name}: no report {measured}"
    assert f"`{path.stem}`" in report.read_text() or report.name in recipes_run_by_reports().get(path.stem, [])


def test_every_recipe_a_report_runs_is_a_file():
    run = recipes_run_by_reports()
    assert len(run) > 20, "the reports' bench/presets.py commands were not found"
    missing = {name: reports for name, reports in run.items() if not (REPOSITORY / "bench" / "recipes" /
                                                                     f"{name}.json").is_file()}
    assert not missing, f"recipes the reports run that bench/recipes/ lacks: {missing}"


def test_reports_commands_are_found():
    text = "python bench/presets.py --train t --dev d \\\n    --presets lean lean-4x --budget 3 --out x.json\n" \
           "python bench/accuracy.py --presets tiny fast"
    flags = [(SCRIPT.findall(text, 0, flag.start())[-1], flag[1].split()) for flag in PRESETS_FLAG.finditer(text)]
    assert flags == [("presets", ["lean", "lean-4x"]), ("accuracy", ["tiny", "fast"])]


@pytest.mark.parametrize("recipe", [{"preset": "lean", "model": {}}, {"model": {}}, {"preset": "lean", "notes": ""}])
def test_recipe_of_mixed_or_unknown_keys_refused(bench_presets, tmp_path, monkeypatch, recipe):
    monkeypatch.setattr(bench_presets, "RECIPES_DIR", tmp_path)
    (tmp_path / "odd.json").write_text(json.dumps(recipe))
    with pytest.raises(ConfigError, match="odd.json: a recipe has either"):
        bench_presets.load_recipe("odd")


def test_missing_recipe_named(bench_presets):
    with pytest.raises(ConfigError, match="no recipe 'nope'.*recipes: fast, lean"):
        bench_presets.load_recipe("nope")
