"""Training: the loss goes down, the non-finite guard, exact resume, the LR schedule, the CLI."""
import dataclasses
import json

import mindspore as ms
import numpy as np
import pytest
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.pipeline import EpochIterator
from ds2stream.presets import PRESETS
from ds2stream.shards import ShardOptions, write_shard_set
from ds2stream.train import TrainConfig, Trainer, resume_position, use_graph_mode

TINY = PRESETS["tiny"].model
FAST_TRAIN = dataclasses.replace(PRESETS["tiny"].train, epochs=2, max_frames=2500, num_buckets=2,
                                 warmup_steps=5, checkpoint_every=4, guard_patience=2)


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    use_graph_mode()


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, sample_dir):
    out = tmp_path_factory.mktemp("train") / "shards"
    write_shard_set([sample_dir / "test"], out, ShardOptions(shard_size_mb=0.3), jobs=2)
    return out


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
    # "AAAAA" needs 9 output frames (a blank between repeats); 11 input frames give 6: an inf loss.
    impossible = {**batch, **{k: batch[k].copy() for k in ("labels", "label_lengths", "feature_lengths")}}
    impossible["labels"][0, :5] = 1
    impossible["label_lengths"][0] = 5
    impossible["feature_lengths"][0] = 11
    assert TINY.output_lengths(11) == 6
    for bad in (nan_features, impossible):
        loss, norm, finite = trainer.train_step(bad)
        assert not finite and not (np.isfinite(loss) and np.isfinite(norm))
        after = all_parameters(trainer)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)  # BatchNorm statistics included
    loss, _, finite = trainer.train_step(batch)
    assert finite and np.isfinite(loss)
    assert any(not np.array_equal(all_parameters(trainer)[n], v) for n, v in before.items())


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


def test_guard_rolls_back_to_the_last_checkpoint_with_a_lower_learning_rate(shard_dir, tmp_path):
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    trainer.start_new()
    batch = first_batch(trainer)
    trainer.train_step(batch)
    trainer.save()
    saved = all_parameters(trainer)
    trainer.train_step(batch)
    bad = {**batch, "features": np.full_like(batch["features"], np.nan)}
    for _ in range(FAST_TRAIN.guard_patience):
        assert not trainer.train_step(bad)[2]
    trainer._rollback()
    assert trainer.state.lr_scale == 0.5
    for name, value in all_parameters(trainer).items():
        if name != "learning_rate":
            np.testing.assert_array_equal(value, saved[name], err_msg=name)


def test_fit_logs_steps_applies_the_schedule_and_keeps_checkpoints(shard_dir, tmp_path):
    trainer = Trainer(tmp_path / "run", shard_dir, TINY, FAST_TRAIN, progress=False)
    trainer.start_new()
    record = trainer.fit()
    assert record["event"] == "epoch_end" and record["mean_loss"] > 0
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "event" not in r]
    assert len(steps) == 2 * trainer.steps_per_epoch
    for r in steps:
        assert r["lr"] == pytest.approx(FAST_TRAIN.learning_rate_at(r["global_step"] - 1, trainer.steps_per_epoch))
    assert steps[0]["lr"] < steps[4]["lr"] > steps[-1]["lr"]  # warm-up, then decay
    assert len(trainer.checkpoints()) <= FAST_TRAIN.keep_last
    assert (tmp_path / "run" / "config.json").exists()


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(shard_dir, tmp_path):
    whole = Trainer(tmp_path / "whole", shard_dir, TINY, FAST_TRAIN, progress=False)
    whole.start_new()
    whole.fit()
    stop_at = whole.steps_per_epoch + 3  # in the middle of the second epoch

    first = Trainer(tmp_path / "split", shard_dir, TINY, FAST_TRAIN, progress=False)
    first.start_new()
    assert first.fit(max_steps=stop_at)["event"] == "max_steps"
    del first
    second = Trainer(tmp_path / "split", shard_dir, TINY, FAST_TRAIN, progress=False)
    second.resume()
    assert (second.state.epoch, second.state.step) == (1, 3)
    second.fit()
    expected, got = all_parameters(whole), all_parameters(second)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_train_cli_refuses_ambiguous_or_occupied_run_dirs(shard_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--shards", str(shard_dir), "--out", str(tmp_path / "a"),
                                 "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "either --out RUN_DIR" in result.output
    result = runner.invoke(cli, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 1 and "not a run directory (no config.json)" in result.output


def test_train_config_round_trips_and_names_unknown_keys():
    config = TrainConfig(epochs=3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"epochs": 1, "loss_scale": 1024})


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
