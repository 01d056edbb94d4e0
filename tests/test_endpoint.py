"""Endpoints: a stream that stays open gives a segment per utterance, cut by the rules of
``inference/endpoint.py``, in the library, ``transcribe --stream``, ``/stream`` and the page.

The model: the stream preset's network with random weights and its classifier fitted to read six
recordings of spoken digits (``testkit.models.fit_classifier``): the blank where they are silent,
their digits where they speak. What it reads of each recording alone is the reference."""
import asyncio
import json
import re
import time

import numpy as np
import pytest
import soundfile

from ds2stream.data.audio import read_audio
from ds2stream.errors import ConfigError
from ds2stream.features import FeatureConfig, Normalize, Scale
from ds2stream.inference.endpoint import EndpointDetector, EndpointRules
from testkit.corpora import joined_with_pauses

SLIDING_MEL = FeatureConfig(scale=Scale.MEL, n_mels=80, normalize=Normalize.SLIDING)
#: Seconds of quiet after each recording of the test stream (the shortest 0.6 s).
PAUSES = (0.8, 1.0, 0.6, 1.2, 0.9, 0.6)
#: Ends a segment within the shortest pause.
RULES = EndpointRules(silence_after_speech=0.4)


@pytest.fixture(scope="module")
def digits(sample_dir) -> list[tuple[np.ndarray, str]]:
    """Six recordings of six speakers saying six different digits, and their transcripts."""
    files = sorted(sample_dir.glob("test/*/*/*.flac"))  # 50 per speaker: 5 of each digit
    chosen = [files[50 * speaker + 5 * ((3 * speaker + 1) % 10) + speaker % 5] for speaker in range(6)]
    texts = {}
    for path in chosen:
        for line in next(path.parent.glob("*.trans.txt")).read_text().splitlines():
            utterance, text = line.split(" ", 1)
            texts[utterance] = text
    return [(read_audio(path)[0], texts[path.stem]) for path in chosen]


@pytest.fixture(scope="module")
def talk(digits):
    """The test stream: the six recordings with PAUSES after them; (samples, spans)."""
    return joined_with_pauses([s for s, _ in digits], PAUSES)


@pytest.fixture(scope="module")
def reader(digits, talk):
    """(network, config, its StreamingModel): the classifier fitted to read the digits alone and in
    the test stream, the same in both; so what the tests see is where a stream is cut, and
    whether each segment is decoded afresh, not how a model reads a word in another context
    (this one, random but for its classifier, reads another arrangement of them less well)."""
    from testkit.models import fit_classifier, random_stream_network

    network, config = random_stream_network(SLIDING_MEL)
    samples, spans = talk
    examples = [(s, [(0, len(s), text)]) for s, text in digits]
    examples.append((samples, [(first, end, text) for (first, end), (_, text) in zip(spans, digits)]))
    model = fit_classifier(network, config, SLIDING_MEL, examples)
    return network, config, model


def streamed(model, samples, chunk=4000, **open_args):
    """The stream of ``samples`` in chunks of 250 ms, ended; and every log-probability it gave."""
    stream = model.open(**open_args)
    outputs = [stream.push(samples[at: at + chunk]) for at in range(0, len(samples), chunk)]
    outputs.append(stream.end())
    return stream, np.concatenate(outputs)


def test_endpoint_rules_are_checked_and_the_message_names_the_bad_value():
    assert EndpointRules() == EndpointRules(silence_after_speech=1.2, silence_without_speech=2.4, max_segment=20)
    assert EndpointRules.from_dict({"max_segment": 8}).to_dict() == {
        "silence_after_speech": 1.2, "silence_without_speech": 2.4, "max_segment": 8.0}
    cases = [  # (what is given, what the message says)
        ({"silence_after_speech": -1}, "endpoint silence_after_speech must be seconds above 0, got -1"),
        ({"silence_without_speech": 0}, "silence_without_speech must be seconds above 0, got 0"),
        ({"max_segment": float("nan")}, "max_segment must be seconds above 0, got nan"),
        ({"max_segment": float("inf")}, "got inf"),
        ({"max_segment": "20"}, "got '20'"),
        ({"silence_after_speech": True}, "got True"),
        ({"silense_after_speech": 1}, "unknown endpoint rules silense_after_speech; known: silence_after_speech, "
                                      "silence_without_speech, max_segment"),
    ]
    for given, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            EndpointRules.from_dict(given)
    with pytest.raises(ConfigError, match=re.escape('endpoint must be an object such as {"silence_after_speech": 0.8}, '
                                                    'got 3')):
        EndpointRules.from_dict(3)


def test_the_options_of_transcribe_are_the_keys_of_the_start_message():
    # one vocabulary: --endpoint-NAME for the "endpoint" key NAME, and the defaults the library's
    from ds2stream.cli import cli

    options = {p.opts[0]: p for p in cli.commands["transcribe"].params if p.opts[0].startswith("--endpoint-")}
    keys = EndpointRules().to_dict()
    assert sorted(options) == sorted("--endpoint-" + key.replace("_", "-") for key in keys)
    assert all(f"Default {keys[p.name.removeprefix('endpoint_')]:g}." in p.help for p in options.values())


@pytest.mark.parametrize("path, fires_at", [
    # 40-ms frames; rules: 0.2 s (5 frames) of silence after speech, 0.4 s (10) without, 0.6 s (15) at most
    ("_" * 12, 9),  # rule 1: ten frames of silence, nothing decoded
    ("__A_________", 7),  # rule 2: five after the A
    ("__A__B__C__D__E__", 14),  # rule 3: the fifteenth frame, speech going on
    ("A____B____", None),  # four blanks after speech: no rule yet
])
def test_the_rules_fire_at_the_frame_where_the_best_path_says(path, fires_at):
    detector = EndpointDetector(EndpointRules(0.2, 0.4, 0.6), frame_seconds=0.04)
    assert (detector.after_speech, detector.without_speech, detector.max_frames) == (5, 10, 15)
    blank = np.array([c == "_" for c in path])
    assert detector.find(blank) == fires_at
    detector.restart()  # the next segment counts from nothing
    assert detector.find(blank) == fires_at


def test_utterances_with_pauses_give_a_segment_each_read_as_the_utterance_alone(digits, reader, talk):
    from ds2stream.inference.beam import BeamSearch

    _, config, model = reader
    samples, spans = talk
    alone = [" ".join(streamed(model, s)[0].text.split()) for s, _ in digits]
    assert all(alone) and len(set(alone)) == 6, alone  # the model reads six different digits
    stream, log_probs = streamed(model, samples, endpoint=RULES)
    segments = stream.segments
    assert [s.text for s in segments] == alone
    assert [s.index for s in segments] == list(range(6))
    for segment, (first, end), pause in zip(segments, spans, PAUSES):
        # inside its recording, give or take 0.3 s: never in the next one (the pause is longer)
        assert first / 16000 - 0.3 <= segment.start < segment.end <= end / 16000 + 0.3, (segment, first, end)
        assert segment.words[0]["start"] == segment.start and segment.words[-1]["end"] == segment.end
    assert stream.text == " ".join(alone) and stream.partial == ""
    # Only the decoder starts afresh: the model's output is the stream's without endpoints.
    assert np.array_equal(log_probs, streamed(model, samples)[1])
    # A beam search starts afresh too: each segment as the search reads the recording alone.
    beam = BeamSearch(beam_width=8)
    alone = [" ".join(streamed(model, s, search=beam.start())[0].text.split()) for s, _ in digits]
    assert [s.text for s in streamed(model, samples, search=beam.start(), endpoint=RULES)[0].segments] == alone


def test_max_segment_cuts_a_stream_that_never_pauses(digits, reader):
    _, _, model = reader
    samples = np.concatenate([s for s, _ in digits] * 2)  # about 6 s, back to back
    rules = EndpointRules(silence_after_speech=5, silence_without_speech=5, max_segment=1.0)
    stream, _ = streamed(model, samples, endpoint=rules)
    windows = [int(segment.start // 1.0) for segment in stream.segments]
    assert len(windows) >= len(samples) / 16000 - 1  # about one a second
    assert windows == sorted(set(windows))  # one per 1-s window at most
    for segment, window in zip(stream.segments, windows):
        assert window <= segment.start < segment.end <= window + 1.0 + 1e-9, segment
    whole, _ = streamed(model, samples)  # the same path, cut: the letters in order, a few twice at a cut
    cut = "".join(stream.text.split())
    assert len(cut) >= len("".join(whole.text.split())) and set(cut) == set("".join(whole.text.split()))


@pytest.fixture(scope="module")
def reader_checkpoint(reader, tmp_path_factory):
    from testkit.models import save_stream_checkpoint

    network, config, _ = reader
    return save_stream_checkpoint(network, config, SLIDING_MEL, tmp_path_factory.mktemp("endpoint") / "reader.ckpt")


def test_transcribe_stream_prints_each_segment_with_its_times_as_it_ends(reader, talk, reader_checkpoint, tmp_path):
    from click.testing import CliRunner

    from ds2stream.cli import cli

    _, _, model = reader
    samples, _ = talk
    audio = tmp_path / "talk.wav"
    soundfile.write(audio, samples, 16000, subtype="PCM_16")
    runner = CliRunner()
    result = runner.invoke(cli, ["transcribe", "--stream", "--endpoint-silence-after-speech", "0.4", "--model",
                                 str(reader_checkpoint), str(audio)])
    assert result.exit_code == 0, result.output
    messages = [json.loads(line) for line in result.output.splitlines()]
    expected = streamed(model, samples, endpoint=RULES)[0].segments
    lines = [n for n, message in enumerate(messages) if "segment" in message]
    assert [messages[n] for n in lines] == [{"file": str(audio), **segment.to_dict()} for segment in expected]
    # as each ends: the next utterance's partials come after it
    assert all(any("partial" in m for m in messages[a + 1: b]) for a, b in zip(lines, lines[1:]))
    final = messages[-1]
    assert final["text"] == " ".join(s.text for s in expected)
    assert final["segments"] == [s.summary() for s in expected]
    assert final["words"] == [w for s in expected for w in s.words]

    for args, message in [
        (["--stream", "--endpoint-max-segment", "0"],
         "Invalid value for '--endpoint-max-segment': endpoint max_segment must be seconds above 0, got 0.0"),
        (["--stream", "--endpoint-silence-without-speech", "nan"], "silence_without_speech must be seconds above 0"),
        (["--endpoint"], "endpoints cut a stream: give --stream too"),
    ]:
        refused = runner.invoke(cli, ["transcribe", *args, "--model", str(reader_checkpoint), str(audio)])
        assert refused.exit_code == 2 and message in refused.output, refused.output


@pytest.fixture(scope="module")
def reader_server(reader_checkpoint):
    """`ds2stream serve` of the reader, streams and segments held to 4 s (--max-seconds)."""
    from testkit.servers import served

    with served(reader_checkpoint, "--max-seconds", "4", "--max-streams", "2") as url:
        yield url


def test_the_websocket_sends_each_segment_as_it_ends_and_refuses_bad_rules(reader, talk, reader_server):
    from testkit.servers import play, refused

    _, _, model = reader
    samples, _ = talk
    asked = {"silence_after_speech": 0.4, "max_segment": 30}
    # played at the speed it was spoken: a faster client's chunks share ticks, and segments that end
    # in one tick come one after the other, with no partial between them
    messages, code = asyncio.run(play(reader_server, samples, start={"sample_rate": 16000, "endpoint": asked},
                                      pace=4000 / 16000))
    ready, *rest, final = messages
    # max_segment held to the server's --max-seconds, and said so
    assert ready == {"ready": True, "sample_rate": 16000,
                     "endpoint": {"silence_after_speech": 0.4, "silence_without_speech": 2.4, "max_segment": 4.0}}
    expected = streamed(model, samples, endpoint=EndpointRules(silence_after_speech=0.4, max_segment=4))[0].segments
    lines = [n for n, message in enumerate(rest) if "segment" in message]
    assert [rest[n] for n in lines] == [segment.to_dict() for segment in expected] and len(expected) == 6
    assert all(any("partial" in m for m in rest[a + 1: b]) for a, b in zip(lines, lines[1:]))
    # the stream goes on past --max-seconds (7.6 s): each segment is held to it, not the stream
    assert code == 1000 and final["duration"] == round(len(samples) / 16000, 3) > 4
    assert final["text"] == " ".join(s.text for s in expected)
    assert final["segments"] == [s.summary() for s in expected] and final["words"] == [w for s in expected
                                                                                          for w in s.words]
    cases = [  # a start message's rules -> the close reason
        ({"silence_after_speech": -1}, "endpoint silence_after_speech must be seconds above 0, got -1"),
        ({"max_segment": "long"}, "endpoint max_segment must be seconds above 0, got 'long'"),
        ({"silence": 1}, "unknown endpoint rules silence; known: silence_after_speech, silence_without_speech"),
        (True, "endpoint must be an object such as"),
    ]
    for rules, reason in cases:
        code, said = asyncio.run(refused(reader_server, {"sample_rate": 16000, "endpoint": rules}))
        assert code == 1008 and reason in said, (rules, code, said)


def test_the_page_lists_each_utterance_with_its_times_and_the_partial_after_them(reader, digits, reader_server,
                                                                                  tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from testkit.browser import headless_chromium

    _, _, model = reader
    # pauses longer than the default rules' 1.2 s: the page asks for the defaults
    microphone, _ = joined_with_pauses([s for s, _ in digits[:3]], [2.0] * 3, seed=2)
    soundfile.write(tmp_path / "microphone.wav", microphone, 16000, subtype="PCM_16")
    with headless_chromium(fake_microphone=tmp_path / "microphone.wav") as browser:
        browser.get(reader_server + "/")
        browser.execute_script(  # what the page sends, to check that it shows what is made of it
            "window.sent = []; const send = WebSocket.prototype.send;"
            "WebSocket.prototype.send = function (data) {"
            "  if (data instanceof ArrayBuffer) { window.sent.push(Array.from(new Int16Array(data))); }"
            "  return send.call(this, data); };")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_element(By.ID, "live").is_enabled())
        browser.find_element(By.ID, "live").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#segments li")) >= 2
                   or b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == ""
        time.sleep(0.5)  # the next utterance's partial under the list, maybe
        browser.find_element(By.ID, "live-stop").click()
        wait.until(lambda b: "s of audio" in b.find_element(By.ID, "status").text
                   or b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == ""
        shown = [(item.find_element(By.CLASS_NAME, "time").text, item.find_element(By.CLASS_NAME, "text").text)
                 for item in browser.find_elements(By.CSS_SELECTOR, "#segments li")]
        rows = browser.find_elements(By.CSS_SELECTOR, "#words tr")
        words = [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows[1:]]
        transcript = browser.find_element(By.ID, "transcript").text
        sent = np.concatenate([np.array(chunk, np.int16) for chunk in browser.execute_script("return window.sent")])
    # the server's default rules, max_segment held to its --max-seconds 4
    expected = streamed(model, sent, endpoint=EndpointRules(max_segment=4))[0].segments
    assert len(shown) >= 2 and shown == [(f"{s.start:.2f}–{s.end:.2f} s", s.text) for s in expected]
    assert words == [w["word"] for s in expected for w in s.words] and transcript == ""
