"""Streaming recognition: features, conv layers, forward RNN and lookahead run chunk by chunk on
real recordings give what the whole-utterance pass gives."""
import dataclasses

import numpy as np
import pytest

from ds2stream.data.audio import read_audio
from ds2stream.errors import ConfigError
from ds2stream.features import FeatureConfig, Normalize, Scale, spectrogram, spectrogram_reference
from ds2stream.model import ModelConfig
from ds2stream.presets import PRESETS

SLIDING_MEL = FeatureConfig(scale=Scale.MEL, n_mels=80, normalize=Normalize.SLIDING)
#: chunk sizes in samples: one sample at a time, odd sizes, 10 ms, 160 ms, a second, and random
CHUNKINGS = ((1,), (37, 501), (160,), (2560,), (16000,), "random")


@pytest.fixture(scope="module")
def speech(sample_flacs) -> np.ndarray:
    """About 6 s of real speech: recordings of several speakers one after the other (int16), longer
    than the sliding mean's window."""
    return np.concatenate([read_audio(path)[0] for path in sample_flacs[:12]])


def chunks(samples: np.ndarray, sizes, seed: int = 0):
    rng = np.random.default_rng(seed)
    at, turn = 0, 0
    while at < len(samples):
        size = int(rng.integers(1, 4000)) if sizes == "random" else sizes[turn % len(sizes)]
        yield samples[at: at + size]
        at, turn = at + size, turn + 1


def test_the_sliding_mean_is_causal_and_matches_its_numpy_definition(speech):
    whole = spectrogram(speech, SLIDING_MEL)
    assert np.abs(whole - spectrogram_reference(speech, SLIDING_MEL)).max() < 2e-3
    start = spectrogram(speech[:16000], SLIDING_MEL)  # the first second alone: the same frames
    assert np.abs(start[:, :-2] - whole[:, :start.shape[1] - 2]).max() < 1e-5


@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_features_of_a_stream_equal_the_whole_utterances(speech, sizes):
    from ds2stream.inference.stream import FeatureStream

    stream = FeatureStream(SLIDING_MEL)
    parts = [stream.push(chunk) for chunk in chunks(speech, sizes)] + [stream.end()]
    streamed = np.concatenate(parts, axis=1)
    whole = spectrogram(speech, SLIDING_MEL)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-4


def test_a_stream_refuses_features_of_the_whole_utterance_and_a_bidirectional_model():
    from ds2stream.inference.stream import FeatureStream, StreamingModel

    with pytest.raises(ConfigError, match="per_bin"):
        FeatureStream(dataclasses.replace(SLIDING_MEL, normalize=Normalize.PER_BIN))
    with pytest.raises(ConfigError, match="bidirectional"):
        StreamingModel(None, PRESETS["lean"].model, SLIDING_MEL)
    with pytest.raises(ConfigError, match="lookahead"):
        ModelConfig(lookahead=2)  # a lookahead convolution belongs to a forward-only model


@pytest.fixture(scope="module")
def stream_network():
    """The stream preset's network as initialised, its BatchNorm statistics, lookahead and
    classifier drawn at random so every layer shapes the output and the text is not all blanks.
    (Not every weight: recurrent weights that large are chaotic, and a 1e-5 difference between two
    orders of float sums grows without bound.)"""
    import mindspore as ms

    from ds2stream.model import build_model
    from ds2stream.runtime import use_graph_mode

    use_graph_mode()
    config = dataclasses.replace(PRESETS["stream"].model, num_bins=SLIDING_MEL.num_bins)
    network = build_model(config)
    rng = np.random.default_rng(1)
    for parameter in network.get_parameters():
        shape = parameter.shape
        values = {"moving_mean": rng.normal(0, 0.5, shape), "moving_variance": rng.uniform(0.5, 2.0, shape),
                  "gamma": rng.uniform(0.5, 1.5, shape), "beta": rng.normal(0, 0.2, shape),
                  "lookahead": rng.normal(0, 0.5, shape), "fc.": rng.normal(0, 1.0, shape)}
        chosen = next((v for key, v in values.items() if key in parameter.name), None)
        if chosen is not None:
            parameter.set_data(ms.Tensor(chosen.astype(np.float32)))
    network.set_train(False)
    return network, config


@pytest.mark.parametrize("sizes", ((160,), (2560,), (37, 501), "random"))
def test_chunked_log_probabilities_equal_the_whole_utterance_pass(speech, stream_network, sizes):
    from ds2stream.inference.evaluate import network_log_probs
    from ds2stream.inference.stream import StreamingModel

    network, config = stream_network
    whole_features = spectrogram(speech, SLIDING_MEL)
    whole = network_log_probs(network, whole_features[None, None], np.array([whole_features.shape[1]]))[0]
    stream = StreamingModel(network, config, SLIDING_MEL).open()
    given = [stream.push(chunk) for chunk in chunks(speech, sizes)]
    given.append(stream.end())
    assert sum(len(g) for g in given[:-1]) > 0.8 * len(whole)  # most frames came before the end
    streamed = np.concatenate(given)
    assert streamed.shape == whole.shape == (config.output_lengths(whole_features.shape[1]), config.num_classes)
    assert np.abs(streamed - whole).max() <= 1e-4
    assert np.array_equal(stream.log_probs, streamed)


def test_transcribe_stream_prints_growing_partials_then_the_whole_recordings_text_with_word_times(
        speech, stream_network, tmp_path):
    import json

    import soundfile
    from click.testing import CliRunner

    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ds2stream.cli import cli
    from ds2stream.data.text import LABELS

    network, config = stream_network
    model = tmp_path / "stream.ckpt"
    save_checkpoint(network, model, {"format": CHECKPOINT_FORMAT, "labels": LABELS, "model_config": config.to_dict(),
                                     "feature_config": SLIDING_MEL.to_dict()})
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, speech, 16000, subtype="PCM_16")
    runner = CliRunner()
    whole = runner.invoke(cli, ["transcribe", "--model", str(model), str(audio)])
    assert whole.exit_code == 0, whole.output
    text = whole.output.strip().split("\t")[1]
    streamed = runner.invoke(cli, ["transcribe", "--stream", "--chunk-ms", "250", "--model", str(model), str(audio)])
    assert streamed.exit_code == 0, streamed.output
    messages = [json.loads(line) for line in streamed.output.splitlines()]
    *partials, final = messages
    assert final["file"] == str(audio) and final["text"] == text and len(text) > 10
    assert [w["word"] for w in final["words"]] == text.split()
    assert abs(final["duration"] - len(speech) / 16000) < 1e-3 and final["latency"] >= 0
    assert len(partials) >= 3  # the text grew while the audio came, each partial a prefix of the end
    assert all(text.startswith(p["partial"]) for p in partials)
    assert [p["at"] for p in partials] == sorted(p["at"] for p in partials)

    bidirectional = tmp_path / "bidirectional.ckpt"
    tiny = PRESETS["tiny"].model
    from ds2stream.model import build_model
    save_checkpoint(build_model(tiny), bidirectional, {"format": CHECKPOINT_FORMAT, "labels": LABELS,
                                                      "model_config": tiny.to_dict(),
                                                      "feature_config": FeatureConfig().to_dict()})
    refused = runner.invoke(cli, ["transcribe", "--stream", "--model", str(bidirectional), str(audio)])
    assert refused.exit_code == 1 and "bidirectional" in refused.output and "Traceback" not in refused.output
