import subprocess

import click
from click.testing import CliRunner

from ds2stream import __version__
from ds2stream.cli import cli


def test_console_script_lists_commands_and_version():
    out = subprocess.run(["ds2stream", "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out
    version = subprocess.run(["ds2stream", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in version.stdout


def test_unknown_command_exits_non_zero():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code != 0 and "No such command" in result.output


def test_every_option_of_every_command_says_what_it_is():
    missing = [f"{name} {'/'.join(param.opts)}" for name, command in cli.commands.items()
               for param in command.params
               if isinstance(param, click.Option) and not param.hidden and not param.help]
    assert not missing


def test_one_name_for_one_thing_across_verbs():
    # A model file is --model, worker processes are --jobs, words to favour --hotwords in every verb
    # that takes them.
    visible = {name: {opt for p in command.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts}
               for name, command in cli.commands.items()}
    for verb in ("eval", "export", "transcribe", "serve"):
        assert "--model" in visible[verb] and "--checkpoint" not in visible[verb], verb
    for verb in ("eval", "train", "shard", "corpus"):
        assert "--jobs" in visible[verb] and "--workers" not in visible[verb], verb
    for verb in ("eval", "transcribe", "serve"):  # every verb that decodes takes hotwords alike
        assert {"--hotwords", "--hotword-boost"} <= visible[verb], verb


def test_every_verb_that_writes_a_file_names_it_out():
    shown = {name: {opt for p in command.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts}
             for name, command in cli.commands.items()}
    writers = ("average", "corpus", "demo", "download", "eval", "export", "lm", "plot", "shard", "train")
    assert [verb for verb in writers if "--out" not in shown[verb]] == []
    assert "--json" not in shown["eval"]


def test_old_option_names_keep_working(tmp_path):
    # The hidden old spellings give their value when the new one is not given.
    for args in (["eval", "--shards", str(tmp_path), "--checkpoint", str(tmp_path / "none.ckpt")],
                 ["export", "--checkpoint", str(tmp_path / "none.ckpt")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "none.ckpt" in result.output and "does not exist" in result.output
    result = CliRunner().invoke(cli, ["eval", "--shards", str(tmp_path)])
    assert result.exit_code == 2 and "Missing option '--model'" in result.output
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 2 and "Missing option '--shards'" in result.output


def test_info_takes_its_shard_set_as_shards_or_positionally(sample_test_shards):
    by_option = CliRunner().invoke(cli, ["info", "--shards", str(sample_test_shards)])
    positional = CliRunner().invoke(cli, ["info", str(sample_test_shards)])
    assert by_option.exit_code == positional.exit_code == 0 and by_option.output == positional.output
    assert "300 utterances" in by_option.output


def test_root_help_names_every_verb():
    text = CliRunner().invoke(cli, ["--help"]).output.split("Options:")[0]
    assert not [verb for verb in cli.commands if f"`{verb}`" not in " ".join(text.split())]


def test_train_shows_bucketed_beside_batch_mode_and_refuses_both_at_odds(tmp_path):
    shown = [p.opts[0] for p in cli.commands["train"].params if isinstance(p, click.Option) and not p.hidden]
    assert shown.index("--bucketed") == shown.index("--batch-mode") + 1
    result = CliRunner().invoke(cli, ["train", "--out", str(tmp_path / "run"), "--shards", str(tmp_path),
                                      "--batch-mode", "fixed", "--bucketed"])
    assert result.exit_code == 2 and "--batch-mode fixed and --bucketed" in result.output


def test_defaults_are_the_library_s():
    # One home per default: the CLI reads it from the dataclass the library runs with.
    import dataclasses

    from ds2stream.data.remote import Fetch
    from ds2stream.data.shards import ShardOptions
    from ds2stream.inference.serve import ServeLimits
    from ds2stream.inference.transcribe import CHUNK_SECONDS

    def defaults(verb):
        return {p.name: p.default for p in cli.commands[verb].params}

    assert dataclasses.asdict(ServeLimits()).items() <= defaults("serve").items()
    shard = defaults("shard")
    assert (shard["audio_format"], shard["features"], shard["shard_size"], shard["min_duration"]) == (
        ShardOptions.audio_format, ShardOptions.with_features, ShardOptions.shard_size_mb, ShardOptions.min_duration)
    for verb in ("shard", "download"):
        assert (defaults(verb)["timeout"], defaults(verb)["retries"]) == (Fetch.timeout, Fetch.retries)
    assert defaults("transcribe")["chunk_ms"] / 1000 == CHUNK_SECONDS


def test_eval_takes_an_export_as_it_takes_its_checkpoint(sample_test_shards, tmp_path):
    # The deployed file gives the checkpoint's report, utterance by utterance (an untrained model:
    # what it says does not matter, only that the two say the same).
    import json

    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ds2stream.data.text import LABELS
    from ds2stream.features import FeatureConfig
    from ds2stream.network import build_model
    from ds2stream.presets import PRESETS

    model, checkpoint = PRESETS["tiny"].model, tmp_path / "untrained.ckpt"
    save_checkpoint(build_model(model), checkpoint, {"format": CHECKPOINT_FORMAT, "labels": LABELS,
                                                     "model_config": model.to_dict(),
                                                     "feature_config": FeatureConfig().to_dict()})
    runner = CliRunner()
    exported = runner.invoke(cli, ["export", "--model", str(checkpoint), "--out", str(tmp_path / "model.mindir")])
    assert exported.exit_code == 0, exported.output
    reports = {}
    for name, model_file, out in (("checkpoint", checkpoint, "--out"), ("export", tmp_path / "model.mindir", "--json")):
        result = runner.invoke(cli, ["eval", "--shards", str(sample_test_shards), "--model", str(model_file),
                                     out, str(tmp_path / f"{name}.json")])
        assert result.exit_code == 0 and "300 utterances" in result.output, result.output
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["export"]["utterances_detail"] == reports["checkpoint"]["utterances_detail"]
    (tmp_path / "model.json").unlink()
    result = runner.invoke(cli, ["eval", "--shards", str(sample_test_shards), "--model",
                                 str(tmp_path / "model.mindir")])
    assert result.exit_code == 1 and "model.json (feature config, labels) is missing" in result.output


def test_a_stream_chunk_longer_than_the_bound_is_refused_by_name(tmp_path):
    from ds2stream.inference.transcribe import MAX_CHUNK_MS

    audio, model = tmp_path / "a.wav", tmp_path / "m.ckpt"
    audio.write_bytes(b""), model.write_bytes(b"")  # never read: the option is refused first
    result = CliRunner().invoke(cli, ["transcribe", "--model", str(model), "--stream",
                                      "--chunk-ms", str(MAX_CHUNK_MS + 1), str(audio)])
    assert result.exit_code == 2 and "--chunk-ms" in result.output and str(MAX_CHUNK_MS) in result.output
