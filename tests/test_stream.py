"""Streaming recognition: features, conv layers, forward RNN and lookahead run chunk by chunk on
real recordings give what the whole-utterance pass gives."""
import asyncio
import dataclasses
import io
import json
import time

import numpy as np
import pytest
import soundfile

from ds2stream.data.audio import read_audio
from ds2stream.errors import ConfigError, DataError
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


@pytest.fixture(scope="module")
def global_mel(sample_test_shards) -> FeatureConfig:
    """Log-mel features normalised by the global statistics of the sample's test split."""
    from ds2stream.pipeline import with_global_statistics

    return with_global_statistics(dataclasses.replace(SLIDING_MEL, normalize=Normalize.GLOBAL), sample_test_shards)


@pytest.mark.parametrize("sizes", CHUNKINGS)
@pytest.mark.parametrize("normalize", [Normalize.SLIDING, Normalize.GLOBAL])
def test_features_of_a_stream_equal_the_whole_utterances(speech, sizes, normalize, global_mel):
    from ds2stream.inference.stream import FeatureStream

    config = global_mel if normalize is Normalize.GLOBAL else SLIDING_MEL
    stream = FeatureStream(config)
    parts = [stream.push(chunk) for chunk in chunks(speech, sizes)] + [stream.end()]
    streamed = np.concatenate(parts, axis=1)
    whole = spectrogram(speech, config)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-4


def test_a_stream_refuses_samples_it_cannot_take_and_names_them(speech):
    from ds2stream.inference.stream import FeatureStream

    stream = FeatureStream(SLIDING_MEL)
    stream.push(speech[:1000])
    bad = (speech[1000:2000] / 32768).astype(np.float32)
    bad[7] = np.nan
    with pytest.raises(DataError, match="NaN or inf \\(first at sample 1007\\)"):
        stream.push(bad)
    with pytest.raises(DataError, match="1-D int16 or float"):
        stream.push(speech[:10].astype(np.int32))


def test_a_stream_refuses_features_of_the_whole_utterance_and_a_bidirectional_model():
    from ds2stream.inference.stream import FeatureStream, StreamingModel

    with pytest.raises(ConfigError, match="'per_bin' depend on the whole utterance: a stream needs normalize "
                                          "'none', 'sliding' or 'global'"):
        FeatureStream(dataclasses.replace(SLIDING_MEL, normalize=Normalize.PER_BIN))
    with pytest.raises(ConfigError, match="bidirectional"):
        StreamingModel.from_network(None, PRESETS["lean"].model, SLIDING_MEL)
    with pytest.raises(ConfigError, match="lookahead"):
        ModelConfig(lookahead=2)  # a lookahead convolution belongs to a forward-only model


@pytest.fixture(scope="module")
def stream_network():
    """The stream preset's network with random weights (``testkit.models.random_stream_network``)."""
    from testkit.models import random_stream_network

    return random_stream_network(SLIDING_MEL)


@pytest.mark.parametrize("sizes", ((160,), (2560,), (37, 501), "random"))
def test_chunked_log_probabilities_equal_the_whole_utterance_pass(speech, stream_network, sizes):
    from ds2stream.inference.evaluate import network_log_probs
    from ds2stream.inference.stream import StreamingModel

    network, config = stream_network
    whole_features = spectrogram(speech, SLIDING_MEL)
    whole = network_log_probs(network, whole_features[None, None], np.array([whole_features.shape[1]]))[0]
    stream = StreamingModel.from_network(network, config, SLIDING_MEL).open()
    given = [stream.push(chunk) for chunk in chunks(speech, sizes)]
    given.append(stream.end())
    assert sum(len(g) for g in given[:-1]) > 0.8 * len(whole)  # most frames came before the end
    streamed = np.concatenate(given)
    assert streamed.shape == whole.shape == (config.output_lengths(whole_features.shape[1]), config.num_classes)
    assert np.abs(streamed - whole).max() <= 1e-4
    assert np.array_equal(stream.log_probs, streamed)


def test_streams_stepped_together_share_calls_and_each_gets_its_own_whole_utterance_output(speech, stream_network):
    from ds2stream.inference.evaluate import network_log_probs
    from ds2stream.inference.stream import StreamingModel, step

    network, config = stream_network
    # Three streams: two in step with each other (their stages batched), one with its own chunks.
    recordings = [speech, speech[::-1].copy(), speech[8000:]]
    model = StreamingModel.from_network(network, config, SLIDING_MEL)
    streams = [model.open() for _ in recordings]
    sizes = [2560, 2560, 1000]
    outputs = [[] for _ in recordings]
    for turn in range(max(-(-len(r) // n) for r, n in zip(recordings, sizes))):
        chunks_now = [r[turn * n: (turn + 1) * n] for r, n in zip(recordings, sizes)]
        for out, new in zip(outputs, step(streams, chunks_now)):
            out.append(new)
    for out, new in zip(outputs, step(streams, [None] * 3, [True] * 3)):
        out.append(new)
    for recording, out in zip(recordings, outputs):
        features = spectrogram(recording, SLIDING_MEL)
        whole = network_log_probs(network, features[None, None], np.array([features.shape[1]]))[0]
        assert np.abs(np.concatenate(out) - whole).max() <= 1e-4


@pytest.fixture(scope="module")
def stream_checkpoint(stream_network, tmp_path_factory):
    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ds2stream.data.text import LABELS

    network, config = stream_network
    path = tmp_path_factory.mktemp("stream") / "stream.ckpt"
    save_checkpoint(network, path, {"format": CHECKPOINT_FORMAT, "labels": LABELS, "model_config": config.to_dict(),
                                    "feature_config": SLIDING_MEL.to_dict()})
    return path


@pytest.fixture(scope="module")
def stream_server(stream_checkpoint):
    """One `ds2stream serve` of the stream model for the WebSocket and page tests (a server start
    loads MindSpore and compiles the model: once is enough)."""
    from testkit.servers import served

    with served(stream_checkpoint, "--max-streams", "2", "--idle-seconds", "1.5") as url:
        yield url


def test_transcribe_stream_prints_growing_partials_then_the_whole_recordings_text_with_word_times(
        speech, stream_checkpoint, tmp_path):
    from click.testing import CliRunner

    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ds2stream.cli import cli
    from ds2stream.data.text import LABELS

    model = stream_checkpoint
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
    assert final["file"] == str(audio) and final["text"] == text and len(text) >= 8
    assert [w["word"] for w in final["words"]] == text.split()
    assert abs(final["duration"] - len(speech) / 16000) < 1e-3 and final["latency"] >= 0
    assert len(partials) >= 3  # the text grew while the audio came, each partial a prefix of the end
    assert all(text.startswith(p["partial"]) for p in partials)
    assert [p["at"] for p in partials] == sorted(p["at"] for p in partials)
    beam = ["--decoder", "beam", "--beam-width", "8"]  # decoded as the chunks come, then the same end
    whole = runner.invoke(cli, ["transcribe", *beam, "--model", str(model), str(audio)])
    streamed = runner.invoke(cli, ["transcribe", "--stream", *beam, "--model", str(model), str(audio)])
    assert json.loads(streamed.output.splitlines()[-1])["text"] == whole.output.strip().split("\t")[1]

    bidirectional = tmp_path / "bidirectional.ckpt"
    tiny = PRESETS["tiny"].model
    from ds2stream.network import build_model
    save_checkpoint(build_model(tiny), bidirectional, {"format": CHECKPOINT_FORMAT, "labels": LABELS,
                                                      "model_config": tiny.to_dict(),
                                                      "feature_config": FeatureConfig().to_dict()})
    refusal = runner.invoke(cli, ["transcribe", "--stream", "--model", str(bidirectional), str(audio)])
    assert refusal.exit_code == 1 and "bidirectional" in refusal.output and "Traceback" not in refusal.output


def test_serve_streams_partials_and_the_final_text_over_a_websocket_and_refuses_what_it_cannot_take(
        speech, stream_server):
    import urllib.request

    from testkit.servers import play, post_audio, refused

    url = stream_server
    wav = io.BytesIO()
    soundfile.write(wav, speech, 16000, format="WAV", subtype="PCM_16")
    status, whole = post_audio(url, wav.getvalue(), "audio/wav")
    assert status == 200 and len(whole["text"]) >= 8
    messages, code = asyncio.run(play(url, speech))
    ready, *partials, final = messages
    assert ready == {"ready": True, "sample_rate": 16000} and code == 1000
    assert final["text"] == whole["text"] and final["words"] == whole["words"]
    assert len(partials) >= 3 and all(whole["text"].startswith(p["partial"]) for p in partials)
    assert 0 <= final["latency"] < 5 and final["duration"] == whole["duration"]

    half = speech[: len(speech) // 2]
    cases = [  # what a client sends -> the close code and a word of the reason
        (({"sample_rate": 8000, "format": "s16le"},), 1003, "sample_rate must be 16000"),
        (({"sample_rate": 16000, "format": "mp3"},), 1003, "format"),
        (({"sample_rate": 16000, "fromat": "f32le"},), 1008, "unknown start keys fromat"),
        ((b"\x00\x01" * 100,), 1008, "JSON text"),
        (("not json {",), 1008, "not JSON"),
        (("[1, 2]",), 1008, "object"),
        (({"sample_rate": 16000}, b"\x00\x01\x02"), 1008, "whole"),
        (({"sample_rate": 16000, "format": "f32le"}, np.full(8, np.nan, "<f4").tobytes()), 1008, "NaN"),
        (({"sample_rate": 16000}, {"stop": 1}), 1008, '{"end": true}'),
        (({"sample_rate": 16000}, {"end": True}), 1008, "less than one window"),
        (({"sample_rate": 16000}, half[:8000].tobytes()), 4408, "no message for 1.5 s"),  # then silence
        (({"sample_rate": 16000}, b"\x00" * (2 << 20)), 1009, ""),  # a chunk past the message size limit
    ]
    for sends, expected_code, reason in cases:
        code, said = asyncio.run(refused(url, *sends))
        assert code == expected_code and reason in said, (sends[:1], code, said)

    async def crowd():
        """Two streams at a slow pace fill --max-streams 2; a third is refused at once; one
        that drops its connection mid-stream frees its slot."""
        first = asyncio.ensure_future(play(url, speech, chunk=8000, pace=0.05))
        second = asyncio.ensure_future(play(url, speech, chunk=8000, pace=0.05))
        await asyncio.sleep(0.5)
        third = await refused(url, {"sample_rate": 16000})
        return await first, await second, third

    first, second, third = asyncio.run(crowd())
    assert third[0] == 1013 and "retry later" in third[1]
    assert first[0][-1]["text"] == second[0][-1]["text"] == whole["text"]

    async def drop():
        import aiohttp

        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url.replace("http", "ws") + "/stream")
            await ws.send_json({"sample_rate": 16000})
            await ws.send_bytes(half.astype("<i2").tobytes())
            await asyncio.sleep(0.3)
            ws._response.connection.transport.abort()  # gone, no close handshake

    asyncio.run(drop())
    deadline = time.monotonic() + 10
    while json.loads(urllib.request.urlopen(url + "/health").read())["streams"] and time.monotonic() < deadline:
        time.sleep(0.2)
    health = json.loads(urllib.request.urlopen(url + "/health").read())
    assert health["streams"] == 0 and health["streams_refused"] == 1 and health["streaming"] is True
    assert asyncio.run(play(url, speech))[0][-1]["text"] == whole["text"]  # and it goes on serving


def test_the_page_streams_the_microphone_and_shows_the_text_as_it_grows(speech, stream_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from testkit.browser import headless_chromium
    from testkit.servers import post_audio

    url = stream_server
    soundfile.write(tmp_path / "microphone.wav", speech, 16000, subtype="PCM_16")
    with headless_chromium(fake_microphone=tmp_path / "microphone.wav") as browser:
        browser.get(url + "/")
        # Keep what the page sends, to check that it shows what the server makes of that audio.
        browser.execute_script(
            "window.sent = []; const send = WebSocket.prototype.send;"
            "WebSocket.prototype.send = function (data) {"
            "  if (data instanceof ArrayBuffer) { window.sent.push(Array.from(new Int16Array(data))); }"
            "  return send.call(this, data); };")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_element(By.ID, "live").is_enabled())  # once /health says it streams
        browser.find_element(By.ID, "live").click()
        wait.until(lambda b: b.find_element(By.ID, "live-state").text == "listening…"
                   or b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == ""
        shown, started = set(), time.monotonic()
        while time.monotonic() < started + 3.0 or len(shown - {""}) < 2:  # the text while it listens
            assert time.monotonic() < started + 30, "no partial results in 30 s"
            shown.add(browser.find_element(By.ID, "transcript").text)
            time.sleep(0.05)
        browser.find_element(By.ID, "live-stop").click()
        wait.until(lambda b: "s of audio" in b.find_element(By.ID, "status").text
                   or b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == ""
        # Live asks for endpoints: the text is its segments' (tests/test_endpoint.py)
        final = " ".join(item.text for item in browser.find_elements(By.CSS_SELECTOR, "#segments .text"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#words tr")
        words = [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows[1:]]
        sent = np.concatenate([np.array(chunk, np.int16) for chunk in browser.execute_script("return window.sent")])
        assert 2.5 < len(sent) / 16000 < time.monotonic() - started + 1  # about the time it listened
        wav = io.BytesIO()
        soundfile.write(wav, sent, 16000, format="WAV", subtype="PCM_16")
        status, answer = post_audio(url, wav.getvalue(), "audio/wav")
    assert status == 200 and final == " ".join(answer["text"].split()) and words == answer["text"].split()


def test_an_exported_stream_model_streams_what_its_checkpoint_streams(speech, stream_checkpoint, tmp_path):
    from click.testing import CliRunner

    from ds2stream.cli import cli

    runner = CliRunner()
    exported = runner.invoke(cli, ["export", "--model", str(stream_checkpoint), "--out", str(tmp_path / "s.mindir")])
    assert exported.exit_code == 0, exported.output
    sidecar = json.loads((tmp_path / "s.json").read_text())
    assert sidecar["stream"]["convs"] == ["s.stream-conv1.mindir", "s.stream-conv2.mindir"]
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, speech, 16000, subtype="PCM_16")
    finals = []
    for model in (stream_checkpoint, tmp_path / "s.mindir"):
        result = runner.invoke(cli, ["transcribe", "--stream", "--chunk-ms", "200", "--model", str(model), str(audio)])
        assert result.exit_code == 0, result.output
        finals.append(json.loads(result.output.splitlines()[-1]))
    assert finals[0]["text"] == finals[1]["text"] and finals[0]["words"] == finals[1]["words"]
    (tmp_path / "s.stream-rnn.mindir").write_bytes(b"not a model")
    broken = runner.invoke(cli, ["transcribe", "--stream", "--model", str(tmp_path / "s.mindir"), str(audio)])
    assert broken.exit_code == 1 and "streaming stages cannot be read" in broken.output


@pytest.fixture(scope="module")
def stream_transcriber(stream_checkpoint):
    """The stream model in this process, its stages compiled (a first tick would otherwise wait
    for that)."""
    from ds2stream.inference.transcribe import Transcriber

    transcriber = Transcriber(stream_checkpoint)
    warm = transcriber.open_stream()
    warm.push(np.zeros(4000, np.int16))
    warm.end()
    return transcriber


def test_a_stream_tick_waits_for_one_pass_of_a_long_upload_batch_not_for_all_of_it(speech, stream_transcriber):
    # Eight uploads of 6 s queued together: 8 x 1024 padded frames, past SLICE_FRAMES, so two
    # passes of four. A stream's tick that comes while the first pass runs goes before the second
    # (the served code and real forward passes, in this process).
    import threading

    from ds2stream.inference.serve import Recognizer, ServeLimits, StreamTicks, _Request, forward_slices

    transcriber = stream_transcriber
    features = transcriber.features_of(np.tile(speech, 2)[: 6 * 16000], 16000)
    assert len(forward_slices([features.shape[1]] * 8)) == 2
    recognizer = Recognizer(transcriber, ServeLimits())
    ticks = StreamTicks(recognizer.forward)
    in_forward, unmarked = threading.Event(), recognizer._forward

    def marked(*args):
        in_forward.set()
        return unmarked(*args)

    recognizer._forward = marked
    finished = []

    async def scenario():
        loop = asyncio.get_running_loop()
        requests = [_Request(features, 6.0, loop.create_future()) for _ in range(8)]
        for i, request in enumerate(requests):
            request.done.add_done_callback(lambda _, i=i: finished.append(f"upload {i}"))
            recognizer.queue.put_nowait(request)
        recognizer.waiting = len(requests)
        running = [asyncio.ensure_future(recognizer.run()), asyncio.ensure_future(ticks.run())]
        while not in_forward.is_set():
            await asyncio.sleep(0.001)
        tick = ticks.add(transcriber.open_stream(), speech[:16000])
        tick.add_done_callback(lambda _: finished.append("tick"))
        answers = await asyncio.gather(*(request.done for request in requests))
        await tick
        for task in running:
            task.cancel()
        return answers

    answers = asyncio.run(scenario())
    recognizer.forward.shutdown()
    assert finished == [f"upload {i}" for i in range(4)] + ["tick"] + [f"upload {i}" for i in range(4, 8)]
    assert len({answer["text"] for answer in answers}) == 1 and recognizer.batches == 2


#: How much slower than the model every tick is made in the test below.
SLOWER_TICK_S = 0.3


def test_a_stream_whose_ticks_are_slower_than_its_chunks_catches_up_by_the_end(speech, stream_transcriber,
                                                                                monkeypatch):
    # Every tick made SLOWER_TICK_S slower, a client playing 80-ms chunks at real time: each tick
    # carries what came during the one before (about four chunks), so the final comes within about
    # two ticks of the end, with the whole recording's text. Had each tick carried one chunk, the
    # 25 chunks would take 25 ticks: 7.5 s for 2 s of audio.
    from aiohttp.test_utils import TestServer

    from ds2stream.inference import serve
    from testkit.servers import play

    transcriber = stream_transcriber
    audio, chunk = np.tile(speech, 2)[: 2 * 16000], 1280
    model_tick, slow_ticks = serve._tick, []

    def slow_tick(*args):
        time.sleep(SLOWER_TICK_S)
        slow_ticks.append(args)
        return model_tick(*args)

    monkeypatch.setattr(serve, "_tick", slow_tick)

    async def scenario():
        server = TestServer(serve.make_app(transcriber))
        await server.start_server()
        try:
            started = time.perf_counter()
            messages, code = await play(f"http://{server.host}:{server.port}", audio, chunk=chunk, pace=0.08)
            return messages, code, time.perf_counter() - started
        finally:
            await server.close()

    (ready, *partials, final), code, seconds = asyncio.run(scenario())
    assert code == 1000 and final["text"] == transcriber.transcribe_samples(audio, 16000)
    assert all(final["text"].startswith(p["partial"]) for p in partials)
    assert len(slow_ticks) <= -(-len(audio) // chunk) // 2, len(slow_ticks)
    assert final["latency"] < 5 * SLOWER_TICK_S and seconds < 2.0 + 5 * SLOWER_TICK_S, (final["latency"], seconds)
