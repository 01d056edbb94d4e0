"""The DeepSpeech2 network: the zoo's names and shapes, derived lengths, masking, zoo checkpoints."""
import dataclasses
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from ds2stream.checkpoint import CheckpointError, load_weights, read_checkpoint
from ds2stream.errors import ConfigError
from ds2stream.model import ModelConfig, count_parameters, parameter_shapes
from ds2stream.network import build_model
from ds2stream.presets import PRESETS
from ds2stream.runtime import use_graph_mode

ZOO_PARAMS = Path(__file__).parent / "data" / "zoo-ds2-params.json"


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    use_graph_mode()


def test_zoo_preset_has_the_zoos_parameter_names_shapes_and_count():
    config = PRESETS["zoo"].model
    network = build_model(config)
    expected = {p["name"]: tuple(p["shape"]) for p in json.loads(ZOO_PARAMS.read_text())["parameters"]}
    assert parameter_shapes(network) == expected
    total = sum(int(np.prod(shape)) for shape in expected.values())
    assert total == count_parameters(config) == 86_608_224
    assert config.rnn_input_size == 1312


# Padded convolutions keep ceil(frames / stride) frames: the presets' time strides, multiplied
# over their conv layers, read off the preset table by hand.
TIME_STRIDE = {"tiny": 4, "small": 2, "fast": 4, "lean": 3, "stream": 4}


@pytest.mark.parametrize("name", ["tiny", "small", "fast", "lean", "stream"])
def test_output_lengths_and_parameter_count_come_from_the_conv_table(name):
    config = PRESETS[name].model
    network = build_model(config)
    network.set_train(False)
    assert sum(int(np.prod(p.shape)) for p in network.get_parameters()) == count_parameters(config)
    frames = np.array([57, 40, 9, 1], dtype=np.int32)
    features = np.random.default_rng(0).standard_normal((4, 1, 161, 57)).astype(np.float32)
    log_probs, lengths = network(ms.Tensor(features), ms.Tensor(frames))
    assert log_probs.shape == (config.output_lengths(57), 4, 29)
    np.testing.assert_array_equal(lengths.asnumpy(), config.output_lengths(frames))
    np.testing.assert_array_equal(lengths.asnumpy(), -(-frames // TIME_STRIDE[name]))  # and by hand
    np.testing.assert_allclose(np.exp(log_probs.asnumpy()).sum(-1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("name", ["tiny", "stream"])  # bidirectional; forward-only with a lookahead
def test_masking_makes_an_utterance_independent_of_its_padding(name):
    config = dataclasses.replace(PRESETS[name].model, rnn_layers=2)
    network = build_model(config)
    network.set_train(False)  # BatchNorm on moving statistics: no batch effect
    rng = np.random.default_rng(1)
    alone = rng.standard_normal((1, 1, 161, 30)).astype(np.float32)
    padded = np.zeros((2, 1, 161, 64), dtype=np.float32)
    padded[0, :, :, :30] = alone[0]
    padded[1] = rng.standard_normal((1, 161, 64))
    out_alone, _ = network(ms.Tensor(alone), ms.Tensor(np.array([30], np.int32)))
    out_padded, lengths = network(ms.Tensor(padded), ms.Tensor(np.array([30, 64], np.int32)))
    n = config.output_lengths(30)
    assert lengths.asnumpy()[0] == n
    np.testing.assert_allclose(out_padded.asnumpy()[:n, 0], out_alone.asnumpy()[:n, 0], atol=1e-5)


def test_without_masking_padding_leaks_into_the_backward_direction():
    config = dataclasses.replace(PRESETS["tiny"].model, mask_padding=False)
    network = build_model(config)
    network.set_train(False)
    rng = np.random.default_rng(1)
    alone = rng.standard_normal((1, 1, 161, 30)).astype(np.float32)
    padded = np.zeros((1, 1, 161, 64), dtype=np.float32)
    padded[0, :, :, :30] = alone[0]
    out_alone, _ = network(ms.Tensor(alone), ms.Tensor(np.array([30], np.int32)))
    out_padded, _ = network(ms.Tensor(padded), ms.Tensor(np.array([30], np.int32)))
    n = config.output_lengths(30)
    assert np.abs(out_padded.asnumpy()[:n, 0] - out_alone.asnumpy()[:n, 0]).max() > 1e-3


def test_a_zoo_checkpoint_loads_and_its_adam_state_is_skipped(tmp_path):
    rng = np.random.default_rng(2)
    entries = [{"name": p["name"], "data": ms.Tensor(rng.standard_normal(p["shape"]).astype(np.float32) * 0.01)}
               for p in json.loads(ZOO_PARAMS.read_text())["parameters"]]
    entries += [{"name": "moment1.fc.module.weight", "data": ms.Tensor(np.zeros((29, 1024), np.float32))},
                {"name": "beta1_power", "data": ms.Tensor(np.float32(0.9))},
                {"name": "global_step", "data": ms.Tensor(np.int32(1000))}]
    path = tmp_path / "zoo.ckpt"
    ms.save_checkpoint(entries, str(path))
    network = build_model(PRESETS["zoo"].model)
    params, meta = read_checkpoint(path)
    assert meta == {}
    skipped = load_weights(network, params, path)
    assert skipped == ["beta1_power", "global_step", "moment1.fc.module.weight"]
    loaded = {p.name: p.asnumpy() for p in network.get_parameters()}
    for entry in entries[:-3]:
        np.testing.assert_array_equal(loaded[entry["name"]], entry["data"].asnumpy())


def test_a_checkpoint_of_another_preset_is_a_clear_error(tmp_path):
    path = tmp_path / "tiny.ckpt"
    ms.save_checkpoint(build_model(PRESETS["tiny"].model), str(path))
    params, _ = read_checkpoint(path)
    with pytest.raises(CheckpointError, match="made for another preset"):
        load_weights(build_model(PRESETS["small"].model), params, path)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable MindSpore checkpoint"):
        read_checkpoint(bad)


def test_model_config_round_trips():
    for preset in PRESETS.values():
        assert ModelConfig.from_dict(json.loads(json.dumps(preset.model.to_dict()))) == preset.model


def test_dropout_acts_in_training_only_and_loads_any_checkpoint():
    config = dataclasses.replace(PRESETS["tiny"].model, rnn_layers=2)
    plain, dropped = build_model(config), build_model(dataclasses.replace(config, dropout=0.3))
    ms.load_param_into_net(dropped, {p.name: p for p in plain.get_parameters()})  # no parameters of its own
    features = ms.Tensor(np.random.default_rng(3).standard_normal((2, 1, 161, 40)).astype(np.float32))
    frames = ms.Tensor(np.array([40, 31], np.int32))
    for network in (plain, dropped):
        network.set_train(False)
    np.testing.assert_array_equal(dropped(features, frames)[0].asnumpy(), plain(features, frames)[0].asnumpy())
    plain.set_train(True)
    dropped.set_train(True)
    first, second = dropped(features, frames)[0].asnumpy(), dropped(features, frames)[0].asnumpy()
    assert np.abs(first - second).max() > 1e-2  # a new draw of dropped outputs on every call
    np.testing.assert_array_equal(plain(features, frames)[0].asnumpy(), plain(features, frames)[0].asnumpy())
    with pytest.raises(ConfigError, match="dropout 1.0"):
        dataclasses.replace(config, dropout=1.0)
