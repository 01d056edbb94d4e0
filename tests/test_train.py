"""Training: the loss goes down, the non-finite guard, exact resume, the LR schedule, the CLI."""
import dataclasses
import json

import mindspore as ms
import numpy as np
import pytest
from click.testing import CliRunner

from ds2stream.checkpoint import read_checkpoint
from ds2stream.cli import cli
from ds2stream.data.shards import ShardOptions, write_shard_set
from ds2stream.errors import ConfigError
from ds2stream.features import FeatureConfig, Normalize, Scale
from ds2stream.model import ConvLayer, ModelConfig
from ds2stream.pipeline import STANDARD_AUGMENT, BatchMode, EpochIterator, with_global_statistics
from ds2stream.presets import PRESETS
from ds2stream.runtime import use_graph_mode
from ds2stream.training.config import EPOCHS_UNTIL_BUDGET, BestBy, LRSchedule, TrainConfig
from ds2stream.training.plan import resume_position
from ds2stream.training.trainer import Trainer, run_training
from testkit.corpora import librispeech_tree, utterances_of_lengths

TINY = PRESETS["tiny"].model
FAST_TRAIN = dataclasses.replace(PRESETS["tiny"].train, epochs=2, max_frames=2500, num_buckets=2,
                                 warmup_steps=5, checkpoint_every=4, guard_patience=2)
# Exact resume holds with every augmentation on (speed perturbation changes the plan, the others
# draw per utterance): the resume tests run this.
AUGMENTED_TRAIN = dataclasses.replace(FAST_TRAIN, augment=STANDARD_AUGMENT)


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    use_graph_mode()


@pytest.fixture(scope="module")
def shard_dir(sample_dir, tmp_path_factory):
    """3 of each chapter's 5 recordings of the sample's test split (180, 6 speakers): short epochs."""
    root = tmp_path_factory.mktemp("train-shards")
    out = root / "shards"
    write_shard_set([librispeech_tree(sample_dir / "test", root / "corpus", per_chapter=3)], out,
                    ShardOptions(shard_size_mb=0.1))
    return out


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def all_parameters(trainer):
    """Network and optimizer state, by name."""
    return {p.name: p.asnumpy().copy() for p in trainer.step_cell.get_parameters()}


def first_batch(trainer):
    return next(iter(EpochIterator(trainer.source, epoch=1)))[1]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(shard_dir, tmp_path):
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, dataclasses.replace(FAST_TRAIN, warmup_steps=1),
                      progress=False)
    batch = first_batch(trainer)
    losses = [trainer.train_step(batch)[0] for _ in range(12)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]


def test_non_finite_loss_or_gradient_skips_the_update_and_the_run_goes_on(shard_dir, tmp_path):
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    batch = first_batch(trainer)
    trainer.train_step(batch)  # compile and move the weights once
    before = all_parameters(trainer)

    nan_features = {**batch, "features": batch["features"].copy()}
    nan_features["features"][0, 0, 5, 3] = np.nan  # a NaN gradient (and loss)
    # "AAAAA" needs 9 output frames (a blank between repeats); 11 input frames give fewer: an inf loss.
    impossible = {**batch, **{k: batch[k].copy() for k in ("labels", "label_lengths", "feature_lengths")}}
    impossible["labels"][0, :5] = 1
    impossible["label_lengths"][0] = 5
    impossible["feature_lengths"][0] = 11
    assert TINY.output_lengths(11) < 9
    for bad in (nan_features, impossible):
        loss, norm, finite, _ = trainer.train_step(bad)
        assert not finite and not (np.isfinite(loss) and np.isfinite(norm))
        after = all_parameters(trainer)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)  # BatchNorm statistics included
    loss, _, finite, _ = trainer.train_step(batch)
    assert finite and np.isfinite(loss)
    assert any(not np.array_equal(all_parameters(trainer)[n], v) for n, v in before.items())


def test_a_kernel_error_in_the_step_is_skipped_and_training_goes_on_as_if_it_never_came(shard_dir, tmp_path):
    hit = Trainer(tmp_path / "hit", shard_dir, TINY, FAST_TRAIN, progress=False)
    clean = Trainer(tmp_path / "clean", shard_dir, TINY, FAST_TRAIN, progress=False)
    batch = first_batch(hit)
    hit.train_step(batch)
    clean.train_step(batch)
    before = all_parameters(hit)
    # A label length past the labels' width: MindSpore's CTC kernel fails (a RuntimeError, not a NaN),
    # and MindSpore then refuses to run that compiled graph again.
    broken = {**batch, "label_lengths": batch["label_lengths"] + batch["labels"].shape[1]}
    result = hit.train_step(broken)
    assert not result.finite and "CTCLoss" in result.error
    after = all_parameters(hit)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)  # Adam and BatchNorm included
    assert hit.train_step(batch).finite and clean.train_step(batch).finite
    assert_same_parameters(all_parameters(hit), all_parameters(clean))


def test_the_learning_rate_reaches_the_compiled_step(shard_dir, tmp_path):
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    batch = first_batch(trainer)
    trainer.train_step(batch)  # compiled with the first warm-up rate
    weights = [p.name for p in trainer.network.trainable_params()]
    before = all_parameters(trainer)
    trainer.state.lr_scale = 0.0
    assert trainer.train_step(batch)[2]
    after = all_parameters(trainer)
    assert all(np.array_equal(after[n], before[n]) for n in weights)  # a zero rate moves nothing
    assert not np.array_equal(after["moment1.fc.module.weight"], before["moment1.fc.module.weight"])
    trainer.state.lr_scale = 1.0
    trainer.train_step(batch)
    assert not all(np.array_equal(all_parameters(trainer)[n], after[n]) for n in weights)


def test_weight_decay_shrinks_weight_matrices_by_lr_times_decay_before_adam_and_leaves_biases_and_norms(
        shard_dir, tmp_path):
    plain = Trainer(tmp_path / "plain", shard_dir, TINY, FAST_TRAIN, progress=False)
    decayed = Trainer(tmp_path / "decayed", shard_dir, TINY, dataclasses.replace(FAST_TRAIN, weight_decay=0.5),
                      progress=False)
    batch, lr = first_batch(plain), 0.02
    start = {p.name: p.asnumpy().copy() for p in plain.network.trainable_params()}
    assert plain.train_step(batch, lr).finite and decayed.train_step(batch, lr).finite
    after_plain, after_decayed = all_parameters(plain), all_parameters(decayed)
    for name, weight in start.items():
        # The same gradient and Adam step on both sides: only the shrink before it differs.
        expected = lr * 0.5 * weight if weight.ndim > 1 else np.zeros_like(weight)
        np.testing.assert_allclose(after_plain[name] - after_decayed[name], expected, atol=1e-6, err_msg=name)
    with pytest.raises(ConfigError, match="weight_decay"):
        dataclasses.replace(FAST_TRAIN, weight_decay=-0.1)


def test_guard_rolls_back_to_the_last_checkpoint_with_a_lower_learning_rate(shard_dir, tmp_path):
    # Failed steps through the loop's own step (_step: the guard's verdict acted on, the records
    # written), not a call of the rollback itself.
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    trainer.start_new()
    batch = first_batch(trainer)
    trainer.train_step(batch)
    checkpoint = trainer.save()
    saved = all_parameters(trainer)
    trainer.train_step(batch)
    bad = {**batch, "features": np.full_like(batch["features"], np.nan)}
    for step in range(FAST_TRAIN.guard_patience):
        result, _, _ = trainer._step(0, step, bad)
        assert not result.finite
    assert trainer.state.lr_scale == 0.5 and trainer.state.skipped == FAST_TRAIN.guard_patience
    for name, value in all_parameters(trainer).items():
        if name != "learning_rate":
            np.testing.assert_array_equal(value, saved[name], err_msg=name)
    records = read_metrics(tmp_path / "run")
    failed = [r for r in records if r.get("event") == "nonfinite"]
    ids = sorted(trainer.shards.ids[int(r)].as_py() for r, m in zip(batch["rows"], batch["mask"]) if m)
    assert len(failed) == FAST_TRAIN.guard_patience and all(sorted(r["ids"]) == ids for r in failed)
    rollbacks = [r for r in records if r.get("event") == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["checkpoint"] == str(checkpoint) and rollbacks[0]["lr_scale"] == 0.5
    # The next failed steps count afresh: one more is no second rollback.
    trainer._step(0, FAST_TRAIN.guard_patience, bad)
    assert trainer.state.lr_scale == 0.5


def test_fit_logs_steps_applies_the_schedule_and_keeps_checkpoints(shard_dir, tmp_path):
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    trainer.start_new()
    record = trainer.fit()
    assert record["event"] == "epoch_end" and record["mean_loss"] > 0
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "event" not in r]
    assert len(steps) == 2 * trainer.steps_per_epoch
    # By hand: a linear warm-up over 5 steps to the peak, then x decay per epoch of steps.
    peak, decay, per_epoch = FAST_TRAIN.learning_rate, FAST_TRAIN.lr_decay_per_epoch, trainer.steps_per_epoch
    assert [r["lr"] for r in steps[:5]] == pytest.approx([peak / 5, 2 * peak / 5, 3 * peak / 5, 4 * peak / 5, peak])
    assert steps[5 + per_epoch]["lr"] == pytest.approx(peak * decay)
    assert steps[-1]["lr"] == pytest.approx(peak * decay ** ((len(steps) - 1 - 5) / per_epoch))
    assert len(trainer.checkpoints()) <= FAST_TRAIN.keep_last
    assert (tmp_path / "run" / "config.json").exists()


def test_the_linear_schedule_goes_to_zero_at_the_end_of_the_epochs_or_of_the_minutes():
    # By hand, a 20-step run (2 epochs of 10): warm-up to the peak over 5 steps, capped by the line
    # from the peak at step 0 to 0 at step 20; with a budget of minutes, whichever is further along.
    config = TrainConfig(epochs=2, learning_rate=1e-3, warmup_steps=5, lr_schedule="linear")
    assert [config.learning_rate_at(s, 10) for s in (0, 3, 4, 10, 19, 20)] == pytest.approx(
        [2e-4, 8e-4, 8e-4, 5e-4, 5e-5, 0.0])
    timed = dataclasses.replace(config, schedule_minutes=2.0)
    assert timed.learning_rate_at(10, 10, train_seconds=30) == pytest.approx(5e-4)  # steps further along
    assert timed.learning_rate_at(10, 10, train_seconds=90) == pytest.approx(2.5e-4)  # minutes further along
    assert timed.learning_rate_at(10, 10, train_seconds=150) == 0.0
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")


def test_a_linear_run_ends_with_its_budget_and_its_resume_keeps_the_schedule(shard_dir, tmp_path):
    runner, run = CliRunner(), tmp_path / "run"
    result = runner.invoke(cli, ["train", "--shards", str(shard_dir), "--out", str(run), "--preset", "tiny",
                                 "--max-frames", "2500", "--num-buckets", "2", "--lr-schedule", "linear",
                                 "--weight-decay", "0.01", "--dropout", "0.1",
                                 "--max-minutes", "0.5", "--max-steps", "1"])  # stopped early
    # (one step, with the graph's compilation, is far from the 30-s budget however loaded the machine)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["model_config"]["dropout"] == 0.1
    refused = runner.invoke(cli, ["train", "--resume", str(run), "--dropout", "0.2"])
    assert refused.exit_code == 1 and "a resumed run keeps its model" in refused.output, refused.output
    config = json.loads((run / "config.json").read_text())["train_config"]
    assert config["lr_schedule"] == "linear" and config["schedule_minutes"] == 0.5  # the budget is the run's
    assert config["epochs"] == EPOCHS_UNTIL_BUDGET  # the budget ends it, not the preset's 20 epochs
    assert config["weight_decay"] == 0.01
    result = runner.invoke(cli, ["train", "--resume", str(run)])  # no budget given: the run's own
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.rindex('{"event"'):])["event"] == "max_minutes"
    again = runner.invoke(cli, ["train", "--resume", str(run), "--max-minutes", "5"])  # it has ended: no step more
    ended = json.loads(again.stdout[again.stdout.rindex('{"event"'):])
    assert ended["event"] == "schedule_ended" and ended["step_seconds"] == 0.0
    assert f"{run}: already trained for its 0.5 minutes" in again.stderr and "--pretrained" in again.stderr
    steps = [r for r in read_metrics(run) if "event" not in r]
    seconds = np.cumsum([0.0] + [r["step_seconds"] for r in steps])
    assert len(steps) > 1 and seconds[-1] >= 30.0 > seconds[-2]  # stopped once 0.5 min were spent
    # Every step's rate is the schedule's at the run's summed step time before it, across the resume.
    preset, per_epoch = PRESETS["tiny"].train, json.loads((run / "config.json").read_text())["steps_per_epoch"]
    for record, before in zip(steps, seconds):
        done = (record["global_step"] - 1) / (config["epochs"] * per_epoch), before / 30.0
        warm = preset.learning_rate * min(1.0, record["global_step"] / preset.warmup_steps)
        assert record["lr"] == pytest.approx(min(warm, preset.learning_rate * (1 - max(done))), rel=1e-6)


def test_a_distributed_run_is_refused_a_budget_of_minutes(shard_dir, tmp_path):
    # Each rank times its own steps: one that stopped alone would hang the others in the all-reduce.
    result = CliRunner().invoke(cli, ["train", "--shards", str(shard_dir), "--out", str(tmp_path / "run"),
                                      "--distributed", "--max-minutes", "30"])
    assert result.exit_code == 1 and "Error: every rank times its own steps" in result.output
    assert "--max-steps" in result.output and not (tmp_path / "run").exists()


def test_a_new_run_takes_model_changes_and_a_resumed_run_keeps_its_model(shard_dir, tmp_path, caplog):
    # The bench's recipes: a preset's model with other convs or dropout, carried by the checkpoint.
    conv = [{"channels": 4, "kernel": (5, 5), "stride": (2, 2), "padding": (2, 2)}] * 2
    run_training(run_dir=tmp_path / "run", resume_dir=None, shards=shard_dir, dev_shards=None, preset=PRESETS["tiny"],
                 overrides={"epochs": 1}, model_changes={"conv": conv, "dropout": 0.1}, progress=False, max_steps=1)
    checkpoint = sorted((tmp_path / "run" / "checkpoints").glob("step-*.ckpt"))[-1]
    params, meta = read_checkpoint(checkpoint)
    model = ModelConfig.from_dict(meta["model_config"])
    assert model.conv == (ConvLayer(4, (5, 5), (2, 2), (2, 2)),) * 2 and model.dropout == 0.1
    assert params["conv.conv1.weight"].shape == (4, 1, 5, 5) and params["conv.conv2.weight"].shape == (4, 4, 5, 5)
    with pytest.raises(ConfigError, match="a resumed run keeps its model"):
        run_training(run_dir=None, resume_dir=tmp_path / "run", shards=None, dev_shards=None, preset=PRESETS["tiny"],
                     overrides={}, model_changes={"conv": conv}, progress=False, max_steps=2)
    # Its dropout draws cannot be carried over: the resume goes on and says it will not be bit-identical.
    trainer, _ = run_training(run_dir=None, resume_dir=tmp_path / "run", shards=None, dev_shards=None,
                              preset=PRESETS["tiny"], overrides={}, progress=False, max_steps=2)
    assert trainer.model_config.dropout == 0.1 and trainer.state.global_step == 2
    assert "dropout 0.1" in caplog.text and "not end bit-identical" in caplog.text
    for misspelt in ({"model_changes": {"rnn_hiden": 64}}, {"feature_changes": {"n_mel": 40}}):
        with pytest.raises(ConfigError, match="unknown .*Config keys \\['(rnn_hiden|n_mel)'\\]"):
            run_training(run_dir=tmp_path / "other", resume_dir=None, shards=shard_dir, dev_shards=None,
                         preset=PRESETS["tiny"], overrides={}, progress=False, max_steps=1, **misspelt)


def test_global_feature_statistics_come_from_the_training_shards_and_travel_with_the_run(
        shard_dir, sample_test_shards, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--shards", str(shard_dir), "--out", str(run), "--preset", "tiny",
                                      "--feature-scale", "mel", "--feature-norm", "global", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    saved = FeatureConfig.from_dict(json.loads((run / "config.json").read_text())["feature_config"])
    mel_global = FeatureConfig(scale=Scale.MEL, normalize=Normalize.GLOBAL)
    assert saved == with_global_statistics(mel_global, shard_dir) and len(saved.global_mean) == 80
    checkpoint = run / "checkpoints" / "step-00000001.ckpt"
    assert FeatureConfig.from_dict(read_checkpoint(checkpoint)[1]["feature_config"]) == saved
    result = CliRunner().invoke(cli, ["eval", "--shards", str(shard_dir), "--model", str(checkpoint)])
    assert result.exit_code == 0 and "180 utterances" in result.output, result.output
    # A run from these weights on other shards keeps the statistics the weights learnt with.
    result = CliRunner().invoke(cli, ["train", "--shards", str(sample_test_shards), "--out", str(tmp_path / "more"),
                                      "--preset", "tiny", "--feature-scale", "mel", "--feature-norm", "global",
                                      "--pretrained", str(checkpoint), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    carried = json.loads((tmp_path / "more" / "config.json").read_text())["feature_config"]
    assert FeatureConfig.from_dict(carried) == saved != with_global_statistics(mel_global, sample_test_shards)
    # Weights of other features are refused, and the error names what differs, not 160 numbers.
    result = CliRunner().invoke(cli, ["train", "--shards", str(sample_test_shards), "--out", str(tmp_path / "other"),
                                      "--preset", "tiny", "--feature-scale", "mel", "--n-mels", "40",
                                      "--feature-norm", "global", "--pretrained", str(checkpoint), "--max-steps", "1"])
    assert result.exit_code == 1, result.output
    assert "trained on other features than this run computes (n_mels 80 -> 40, global_mean, global_std)" in (
        result.output)


@pytest.fixture(scope="module")
def whole_run(shard_dir, tmp_path_factory):
    """A run of AUGMENTED_TRAIN that never stopped (keeping every checkpoint): its trainer."""
    whole = Trainer(tmp_path_factory.mktemp("whole") / "run", shard_dir, TINY,
                    dataclasses.replace(AUGMENTED_TRAIN, keep_last=0), progress=False)
    whole.start_new()
    whole.fit()
    return whole


def assert_same_parameters(got, expected):
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(shard_dir, tmp_path, whole_run):
    stop_at = whole_run.steps_per_epoch + 3  # in the middle of the second epoch
    first = Trainer(tmp_path / "split", shard_dir, TINY, AUGMENTED_TRAIN, progress=False)
    first.start_new()
    assert first.fit(max_steps=stop_at)["event"] == "max_steps"
    del first
    second = Trainer(tmp_path / "split", shard_dir, TINY, AUGMENTED_TRAIN, progress=False)
    second.resume()
    assert (second.state.epoch, second.state.step) == (1, 3)
    second.fit()
    assert_same_parameters(all_parameters(second), all_parameters(whole_run))


def test_keep_last_zero_keeps_every_checkpoint(whole_run):
    # Epochs differ by a few batches under speed perturbation: their ends come from the records.
    ends = [r["global_step"] for r in read_metrics(whole_run.run_dir) if r.get("event") == "epoch_end"]
    saves = {s for s in range(1, ends[-1] + 1) if s % FAST_TRAIN.checkpoint_every == 0 or s in ends}
    assert [int(p.stem.split("-")[1]) for p in whole_run.checkpoints()] == sorted(saves)
    with pytest.raises(ValueError, match="keep_last must be a count"):
        TrainConfig(keep_last=-1)


def test_average_is_the_mean_of_the_checkpoints_network_parameters(whole_run, tmp_path):
    from ds2stream.checkpoint import read_checkpoint

    chosen = whole_run.checkpoints()[-3:]
    out = tmp_path / "averaged.ckpt"
    result = CliRunner().invoke(cli, ["average", *map(str, whole_run.checkpoints()), "--last", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    averaged, meta = read_checkpoint(out)
    inputs = [read_checkpoint(path)[0] for path in chosen]
    network_names = {p.name for p in whole_run.network.get_parameters()}
    assert set(averaged) == network_names  # Adam's moments are left out
    for name in network_names:
        expected = np.mean([params[name].asnumpy().astype(np.float64) for params in inputs], axis=0)
        np.testing.assert_allclose(averaged[name].asnumpy(), expected, rtol=1e-6, atol=1e-7, err_msg=name)
    assert meta["averaged_from"] == [str(p) for p in chosen]
    assert ModelConfig.from_dict(meta["model_config"]) == whole_run.model_config


def test_checkpoints_of_different_models_are_not_averaged(whole_run, shard_dir, tmp_path):
    other = Trainer(tmp_path / "other", shard_dir, dataclasses.replace(TINY, rnn_hidden=64),
                    dataclasses.replace(FAST_TRAIN, keep_last=0), progress=False)
    other.start_new()
    other.fit(max_steps=1)
    result = CliRunner().invoke(cli, ["average", str(whole_run.checkpoints()[-1]), str(other.checkpoints()[-1]),
                                      "--out", str(tmp_path / "mixed.ckpt")])
    assert result.exit_code == 1 and "made for another model or features" in result.output


def test_resume_after_a_corrupt_newest_checkpoint_goes_back_one_and_logs_each_step_once(shard_dir, tmp_path,
                                                                                       whole_run, caplog):
    first = Trainer(tmp_path / "run", shard_dir, TINY, AUGMENTED_TRAIN, progress=False)
    first.start_new()
    first.fit(max_steps=whole_run.steps_per_epoch + 5)
    newest, previous = first.checkpoints()[-1], first.checkpoints()[-2]
    del first
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a kill mid-write, or a disk fault
    with open(tmp_path / "run" / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 1, "step": 9, "glo')  # and a line torn by the kill
    second = Trainer(tmp_path / "run", shard_dir, TINY, AUGMENTED_TRAIN, progress=False)
    second.resume()
    assert "not a readable MindSpore checkpoint" in caplog.text and newest.name in caplog.text
    assert newest.with_name(newest.name + ".corrupt").exists() and not newest.exists()
    assert second.state.global_step == int(previous.stem.split("-")[1])
    second.fit()
    assert_same_parameters(all_parameters(second), all_parameters(whole_run))
    records = read_metrics(tmp_path / "run")
    steps = [r["global_step"] for r in records if "event" not in r]
    assert steps == list(range(1, whole_run.state.global_step + 1))  # each step once, in order
    assert [r["epoch"] for r in records if r.get("event") == "epoch_end"] == [0, 1]


def test_a_resume_that_changes_the_batch_plan_is_refused_unless_allowed(shard_dir, sample_dir, tmp_path):
    first = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    first.start_new()
    first.fit(max_steps=3)
    runner = CliRunner()
    other_shards = tmp_path / "other"
    write_shard_set([sample_dir / "dev"], other_shards, ShardOptions())
    for flag, value, field in (("--seed", "7", "seed 0 -> 7"), ("--max-frames", "3000", "max_frames 2500 -> 3000"),
                               ("--num-buckets", "3", "num_buckets 2 -> 3"),
                               ("--max-duration", "1.5", "max_duration None -> 1.5"),
                               ("--batch-mode", "unbucketed", "batch_mode 'bucketed' -> 'unbucketed'"),
                               ("--shards", str(other_shards), "shard_set '")):
        result = runner.invoke(cli, ["train", "--resume", str(tmp_path / "run"), flag, value, "--max-steps", "4"])
        assert result.exit_code == 1 and field in result.output and "--allow-plan-change" in result.output, \
            result.output
    changed = Trainer(tmp_path / "run", shard_dir, TINY, dataclasses.replace(FAST_TRAIN, max_frames=3000),
                      progress=False)
    changed.resume(allow_plan_change=True)  # at the same fraction of the epoch
    assert changed.steps_per_epoch != first.steps_per_epoch and changed.state.global_step == 3
    assert changed.state.step == resume_position(3, first.steps_per_epoch, changed.steps_per_epoch)
    allowed = runner.invoke(cli, ["train", "--resume", str(tmp_path / "run"), "--max-frames", "3500",
                                  "--allow-plan-change", "--max-steps", "4"])  # and from the command line
    assert allowed.exit_code == 0, allowed.output
    # the progress bar (stderr) and the final record (stdout) share one stream under CliRunner
    assert json.loads(allowed.output[allowed.output.rindex('{"event"'):])["global_step"] == 4


def test_train_cli_refuses_ambiguous_or_occupied_run_dirs(shard_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--shards", str(shard_dir), "--out", str(tmp_path / "a"),
                                 "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "either --out RUN_DIR" in result.output
    result = runner.invoke(cli, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 1 and "not a run directory (no config.json)" in result.output


def test_train_config_round_trips_and_names_unknown_keys():
    from ds2stream.features import FeatureConfig, Scale

    config = TrainConfig(epochs=3, best_by="cer", features=FeatureConfig(scale=Scale.MEL, n_mels=64))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="best_by must be 'wer' or 'cer'"):
        TrainConfig(best_by="loss")
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"epochs": 1, "loss_scale": 1024})


def test_a_train_config_that_an_older_run_wrote_still_loads_and_is_written_back_alike():
    # config.json as runs wrote it before lr_schedule, weight_decay and schedule_minutes existed,
    # its choices as strings: the fields it lacks take their defaults, the strings become choices.
    older = {"epochs": 20, "learning_rate": 0.002, "warmup_steps": 50, "lr_decay_per_epoch": 0.88,
             "clip_norm": 400.0, "max_frames": 2000, "num_buckets": 4, "sortagrad": True, "seed": 0,
             "checkpoint_every": 100, "keep_last": 3, "guard_patience": 5, "workers": 1,
             "batch_mode": "unbucketed", "max_duration": None, "augment": STANDARD_AUGMENT.to_dict(),
             "best_by": "cer", "features": None, "dynamic_shapes": True}
    older = json.loads(json.dumps(older))
    config = TrainConfig.from_dict(older)
    assert (config.batch_mode, config.best_by, config.lr_schedule) == (BatchMode.UNBUCKETED, BestBy.CER,
                                                                       LRSchedule.EXPONENTIAL)
    written = json.loads(json.dumps(config.to_dict()))
    assert {name: written[name] for name in older} == older
    assert written["lr_schedule"] == "exponential"
    with pytest.raises(ConfigError, match="batch_mode must be 'bucketed', 'unbucketed' or 'fixed', got 'sorted'"):
        TrainConfig.from_dict({**older, "batch_mode": "sorted"})


def test_set_seed_makes_initialisation_repeatable(shard_dir, tmp_path):
    a = Trainer(tmp_path / "a", shard_dir, TINY, FAST_TRAIN, progress=False)
    b = Trainer(tmp_path / "b", shard_dir, TINY, FAST_TRAIN, progress=False)
    pa, pb = all_parameters(a), all_parameters(b)
    assert all(np.array_equal(pa[n], pb[n]) for n in pa)
    assert ms.get_context("mode") == ms.GRAPH_MODE


def test_a_run_resumed_with_another_number_of_ranks_goes_on_at_the_same_fraction_of_the_epoch():
    assert resume_position(50, 100, 200) == 100  # 2 ranks -> 1: twice the batches per epoch
    assert resume_position(99, 100, 50) == 49
    assert resume_position(100, 100, 50) == 50  # the epoch was done
    assert resume_position(7, None, 50) == 0  # a checkpoint that does not say: the epoch starts again


def test_train_cli_trains_on_librispeech_lengths_and_leaves_out_longer_than_max_duration(tmp_path, sample_dir,
                                                                                           caplog):
    # 24.5 s (392,000 samples) is 2,451 frames, a 2,456-frame bucket: above the tiny preset's 2,000.
    corpus = utterances_of_lengths(sample_dir / "train", tmp_path, [24_001, 97_777, 392_000, 559_999])
    write_shard_set([corpus], tmp_path / "shards", ShardOptions())
    result = CliRunner().invoke(cli, ["train", "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "run"),
                                      "--preset", "tiny", "--epochs", "1", "--max-duration", "30"])
    assert result.exit_code == 0, result.output
    records = read_metrics(tmp_path / "run")
    steps = [r for r in records if "event" not in r]
    (epoch,) = [r for r in records if r.get("event") == "epoch_end"]
    assert epoch["dropped"]["longer_than_max_duration"] == 1  # the 35 s one
    assert "1 of 4 utterances are left out of every epoch (longer than max duration: 1)" in caplog.text
    assert len(steps) == 3 and all(r["loss"] is not None for r in steps)
    assert sorted(r["shape"][3] for r in steps)[-1] == 2456 and sorted(r["shape"][0] for r in steps) == [1, 1, 1]


def test_max_minutes_stops_with_a_checkpoint_and_the_run_resumes_to_its_end(shard_dir, tmp_path):
    runner, run = CliRunner(), tmp_path / "run"
    result = runner.invoke(cli, ["train", "--shards", str(shard_dir), "--out", str(run), "--preset", "tiny",
                                 "--epochs", "1", "--max-frames", "2500", "--num-buckets", "2",
                                 "--max-minutes", "0.000001"])  # any step takes longer: stop after the first
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["event"] == "max_minutes" and record["global_step"] == 1 and record["step_seconds"] > 0
    assert (run / "checkpoints" / "step-00000001.ckpt").is_file()
    result = runner.invoke(cli, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    records = read_metrics(run)
    steps = [r["global_step"] for r in records if "event" not in r]
    assert len(steps) > 1 and steps == list(range(1, len(steps) + 1))
    assert records[-2]["event"] == "epoch_end" and records[-2]["global_step"] == steps[-1]
