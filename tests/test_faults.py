"""Fault injection: kill -9 at the riskiest points of `shard` and `train`, then the same command or
--resume; a fuzzed corpus of bad files; broken checkpoints and models. bench/faults.py runs the long
version (kills at random times, a larger fuzzed corpus)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ds2stream.checkpoint import read_checkpoint
from ds2stream.cli import cli
from ds2stream.data.shards import ShardOptions, load_index, read_shard, write_shard_set
from ds2stream.failpoints import ENV as KILL_AT
from ds2stream.presets import get_preset
from ds2stream.training.trainer import run_training
from testkit.corpora import fuzzed_corpus, librispeech_archive, librispeech_tree

pytestmark = pytest.mark.slow


def ds2stream(*args, kill_at=None):
    """Run the CLI in its own process (so that it can die), optionally with a failpoint armed."""
    env = {k: v for k, v in os.environ.items() if k != KILL_AT}
    if kill_at:
        env[KILL_AT] = kill_at
    return subprocess.run([sys.executable, "-m", "ds2stream.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def rows_by_id(shard_dir):
    summary, _ = load_index(shard_dir)
    return {row["id"]: row for info in summary["shards"] for row in read_shard(shard_dir / info["file"]).to_pylist()}


# ---------------------------------------------------------------- shard

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, sample_dir):
    return fuzzed_corpus(sample_dir / "train", tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("as_archive", [False, True], ids=["folder", "tar.gz"])
def test_a_fuzzed_corpus_never_stops_shard_every_bad_file_is_reported_every_good_one_arrives(
        fuzzed, tmp_path, as_archive):
    corpus, good, bad = fuzzed
    source = librispeech_archive(corpus, tmp_path / "fuzz.tar.gz") if as_archive else corpus
    result = ds2stream("shard", source, "--out", tmp_path / "shards", "--strict")
    assert result.returncode == 1 and "Traceback" not in result.stderr  # --strict: problems were found
    summary, _ = load_index(tmp_path / "shards")
    assert summary["problem_counts"] == bad and sum(bad.values()) >= 250
    rows = rows_by_id(tmp_path / "shards")
    assert {utt_id: row["text"] for utt_id, row in rows.items()} == good  # CRLF, tabs and 8-bit files included
    for problem in summary["problems"]:
        assert problem["source"] in problem["message"] or problem["source"].rsplit("/", 1)[-1] in problem["message"]


@pytest.mark.parametrize("as_archive", [False, True], ids=["folder", "tar.gz"])
def test_kill_minus_nine_between_a_shard_and_its_journal_then_rerun_gives_the_same_bytes(
        sample_dir, tmp_path, as_archive):
    corpus = librispeech_tree(sample_dir / "dev", tmp_path / "ls", per_chapter=10)
    source = librispeech_archive(corpus, tmp_path / "dev.tar.gz") if as_archive else corpus
    command = ("shard", source, "--out", tmp_path / "killed", "--shard-size", "0.05", "--jobs", "2")
    # The first shard: before its journal entry there used to be no journal at all.
    assert ds2stream(*command, kill_at="shard_written:1").returncode == -9
    assert ds2stream(*command).returncode == 0
    assert ds2stream(*command).returncode == 0  # once more on the finished set: nothing to do
    reference = write_shard_set([source], tmp_path / "whole", ShardOptions(shard_size_mb=0.05))
    resumed = load_index(tmp_path / "killed")[0]
    assert [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in reference["shards"]]
    assert resumed["utterances"] == reference["utterances"] == len(rows_by_id(tmp_path / "killed"))


# ---------------------------------------------------------------- train

TRAIN_ARGS = {"epochs": 3, "max_frames": 2500, "num_buckets": 1, "checkpoint_every": 4, "keep_last": 2}


@pytest.fixture(scope="module")
def train_shards(tmp_path_factory, sample_dir):
    root = tmp_path_factory.mktemp("train-shards")
    # 2 of each chapter's 5: short epochs that still hold a checkpoint (every 4 steps) before their end
    write_shard_set([librispeech_tree(sample_dir / "test", root / "train", per_chapter=2)], root / "train-shards")
    write_shard_set([librispeech_tree(sample_dir / "dev", root / "dev", per_chapter=3)], root / "dev-shards")
    return root / "train-shards", root / "dev-shards"


def parameters(path):
    params, meta = read_checkpoint(path)
    return {name: value.asnumpy() for name, value in params.items()}, meta


def test_kill_minus_nine_at_each_risky_point_of_training_then_resume_ends_as_an_uninterrupted_run(
        train_shards, tmp_path):
    train, dev = train_shards
    run = tmp_path / "killed"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in TRAIN_ARGS.items()]
    start = ("train", "--shards", train, "--dev-shards", dev, "--out", run, "--preset", "tiny", *flags)
    resume = ("train", "--resume", run)
    # In this order every point is reached: the first epoch end always improves on "no best yet".
    for command, point in ((start, "best_before_copy:1"), (resume, "checkpoint_written:1"),
                           (resume, "dev_evaluation:1"), (resume, "step_logged:2"), (resume, "checkpoint_renamed:1")):
        outcome = ds2stream(*command, kill_at=point)
        assert outcome.returncode == -9, f"{point} was not reached: {outcome.stderr[-2000:]}"
    outcome = ds2stream(*resume)
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr and "WARNING] ME" not in outcome.stderr  # no framework noise

    trainer, _ = run_training(run_dir=tmp_path / "whole", resume_dir=None, shards=train, dev_shards=dev,
                              preset=get_preset("tiny"), overrides=TRAIN_ARGS, progress=False)
    newest = sorted((run / "checkpoints").glob("step-*.ckpt"))[-1]
    assert newest.name == trainer.checkpoints()[-1].name
    for mine, theirs in ((newest, trainer.checkpoints()[-1]), (run / "best.ckpt", tmp_path / "whole" / "best.ckpt")):
        got, meta = parameters(mine)
        expected, expected_meta = parameters(theirs)
        # Everything in the run's state but its summed step seconds, a measurement of this machine.
        assert got.keys() == expected.keys() and {**meta["state"], "train_seconds": 0} == {
            **expected_meta["state"], "train_seconds": 0}
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{mine.name}: {name}")

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["global_step"] for r in records if "event" not in r]
    assert steps == list(range(1, trainer.state.global_step + 1))  # every step once, none twice
    epochs = [(r["epoch"], r["dev_wer"]) for r in records if r.get("event") == "epoch_end"]
    assert epochs == [(r["epoch"], r["dev_wer"]) for r in reference if r.get("event") == "epoch_end"]
    best = min(range(len(epochs)), key=lambda i: (epochs[i][1], i))
    assert parameters(run / "best.ckpt")[1]["state"]["epoch"] == best + 1  # best.ckpt is the true best
    assert len([r for r in records if r.get("event") == "resume"]) == 5
    assert not list(run.glob("**/*.tmp*"))


# ---------------------------------------------------------------- broken inputs to eval, transcribe, train

def test_broken_checkpoints_models_and_empty_shard_sets_are_one_line_errors(train_shards, tmp_path, sample_flacs):
    train, dev = train_shards
    run_training(run_dir=tmp_path / "run", resume_dir=None, shards=train, dev_shards=None, preset=get_preset("tiny"),
                 overrides={**TRAIN_ARGS, "epochs": 1}, progress=False, max_steps=1)
    checkpoint = sorted((tmp_path / "run" / "checkpoints").glob("*.ckpt"))[-1]
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    runner = CliRunner()
    exported = runner.invoke(cli, ["export", "--model", str(checkpoint), "--out", str(tmp_path / "m.mindir")])
    assert exported.exit_code == 0, exported.output
    sidecar = json.loads((tmp_path / "m.json").read_text())
    sidecar["feature_config"]["n_fft"] = 400  # a MindIR beside another feature config's description
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    empty = tmp_path / "empty"
    (tmp_path / "nothing").mkdir()
    write_shard_set([tmp_path / "nothing"], empty)
    small = tmp_path / "small-run"
    damaged = tmp_path / "damaged"
    shutil.copytree(dev, damaged)
    cut = sorted(damaged.glob("shard-*.arrow"))[0]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # a copy cut short, found mid-evaluation

    cases = [
        (["eval", "--shards", str(dev), "--model", str(truncated)], f"{truncated}: not a readable"),
        (["transcribe", "--model", str(truncated), str(sample_flacs[0])], f"{truncated}: not a readable"),
        (["train", "--shards", str(train), "--out", str(small), "--preset", "small", "--pretrained", str(checkpoint)],
         f"{checkpoint}: lacks"),
        (["transcribe", "--model", str(tmp_path / "m.mindir"), str(sample_flacs[0])], "m.json"),
        (["eval", "--shards", str(dev), "--model", str(tmp_path / "m.mindir")], "m.json"),
        (["eval", "--shards", str(empty), "--model", str(checkpoint)], f"{empty}: the shard set holds no"),
        (["train", "--shards", str(empty), "--out", str(tmp_path / "r2")], f"{empty}: the shard set holds no"),
        (["eval", "--shards", str(damaged), "--model", str(checkpoint), "--jobs", "2"], f"{cut}: not a readable shard"),
    ]
    for args, message in cases:
        outcome = runner.invoke(cli, args)
        assert outcome.exit_code == 1, (args, outcome.output)
        lines = [line for line in outcome.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in outcome.output, (args, outcome.output)


def test_a_checkpoint_whose_weights_hold_nan_is_a_one_line_error_naming_it(sample_test_shards, tmp_path,
                                                                           sample_flacs):
    # A diverged run's weights: every output is NaN, and decoding them ended in a traceback.
    from mindspore import Tensor

    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ds2stream.data.text import LABELS
    from ds2stream.features import FeatureConfig
    from ds2stream.network import build_model
    from ds2stream.presets import PRESETS

    model = PRESETS["tiny"].model
    network = build_model(model)
    broken = list(network.get_parameters())[-1]
    broken.set_data(Tensor(np.full(broken.shape, np.nan, np.float32)))
    checkpoint = tmp_path / "diverged.ckpt"
    save_checkpoint(network, checkpoint, {"format": CHECKPOINT_FORMAT, "labels": LABELS,
                                          "model_config": model.to_dict(), "feature_config": FeatureConfig().to_dict()})
    runner = CliRunner()
    for args in (["eval", "--shards", str(sample_test_shards), "--model", str(checkpoint)],
                 ["transcribe", "--model", str(checkpoint), str(sample_flacs[0])]):
        outcome = runner.invoke(cli, args)
        lines = [line for line in outcome.output.splitlines() if line.strip()]
        assert outcome.exit_code == 1 and len(lines) == 1, (args, outcome.output)
        assert f"{checkpoint}: parameter {broken.name} holds NaN" in lines[0], (args, outcome.output)
