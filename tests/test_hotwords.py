"""Hotwords: the list (a file or a request's, normalised, errors naming the file and line), the
context graph (a completed phrase keeps its bonus, a partial match ends with none), the beam search
they bias (toward a hotword where the acoustics hesitate, not where they are sure; as before
without them, with an LM and without), and every verb that decodes: transcribe, eval, serve's POST
and /stream."""
import asyncio
import dataclasses
import io
import json

import numpy as np
import pytest
import soundfile

from ds2stream.data.text import LABELS
from ds2stream.inference.beam import BeamSearch
from ds2stream.inference.decoding import DecoderConfig, greedy_decode, make_decoder
from ds2stream.inference.hotwords import DEFAULT_BOOST, ContextGraph, Hotwords, HotwordsError
from ds2stream.inference.lm import build_lm
from testkit.log_probs import spell

#: A bigram LM that knows none of the names below (so they pay its OOV penalty).
MEETINGS = ("I MET TOM", "I MET HIM", "WE MET TOM", "TOM MET HIM", "HE SAW HUCK")


def meetings_lm():
    return build_lm([s.split() for s in MEETINGS] * 3, 2, discount_fallback=True)


def with_lm(**settings):
    return dict(lm=meetings_lm(), alpha=0.5, beta=1.0, oov_penalty=16.0, **settings)


# ------------------------------------------------------------------------------------ the list

def test_a_hotwords_file_is_read_normalised_with_its_boosts(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# people\nHUCKLEBERRY FINN :2.5\n\n  Tom Sawyer  \nSt. Petersburg :0.5\nApollo 11\nO\u2019Brien\n")
    hotwords = Hotwords.read(path, default_boost=1.5)
    assert hotwords.boosts == {"HUCKLEBERRY FINN": 2.5, "TOM SAWYER": 1.5, "ST PETERSBURG": 0.5,
                               "APOLLO ELEVEN": 1.5, "O'BRIEN": 1.5}
    assert Hotwords.read(path).boosts["TOM SAWYER"] == DEFAULT_BOOST
    # a request's hotwords join a server's, whose phrases they may re-weigh
    merged = hotwords.merged(Hotwords.from_items(["tom sawyer", {"phrase": "Becky", "boost": 3}], "hotwords"))
    assert merged.boosts["TOM SAWYER"] == DEFAULT_BOOST and merged.boosts["BECKY"] == 3
    assert hotwords.merged(Hotwords()) is hotwords and not Hotwords()


@pytest.mark.parametrize("lines, message", [
    ("FINN :two", "names.txt:1: the boost ':two' is not a number (write PHRASE :2.5)"),
    ("FINN\nTOM :-1", "names.txt:2: the boost must be a positive number, got -1.0"),
    ("FINN\n\n# a comment\nTOM :0", "names.txt:4: the boost must be a positive number, got 0.0"),
    ("FINN :inf", "names.txt:1: the boost must be a positive number, got inf"),
    ("FINN\n?!", "names.txt:2: '?!' has no letters left once normalised"),
    ("Finn\nTOM\nFINN :2", "names.txt:3: 'FINN' is already listed (line 1)"),
])
def test_a_bad_hotwords_file_is_refused_naming_the_file_and_the_line(tmp_path, lines, message):
    path = tmp_path / "names.txt"
    path.write_text(lines + "\n")
    with pytest.raises(HotwordsError) as caught:
        Hotwords.read(path)
    assert str(caught.value) == f"{tmp_path}/{message}"


@pytest.mark.parametrize("items, message", [
    ("FINN", "hotwords must be a list of phrases or of {phrase, boost}"),
    (["FINN", 3], "hotwords[1]: a phrase is a string, got 3"),
    ([{"phrase": "FINN", "weight": 2}], "hotwords[0]: expected {phrase, boost}, got keys ['phrase', 'weight']"),
    ([{"phrase": "FINN", "boost": "2"}], "hotwords[0]: the boost '2' is not a number"),
    ([{"phrase": "FINN", "boost": -2}], "hotwords[0]: the boost must be a positive number, got -2.0"),
    (["FINN", {"phrase": "finn"}], "hotwords[1]: 'FINN' is already listed (item 0)"),
])
def test_a_bad_request_list_is_refused_naming_the_item(items, message):
    with pytest.raises(HotwordsError) as caught:
        Hotwords.from_items(items, "hotwords")
    assert str(caught.value) == message


def test_a_list_past_a_servers_limits_is_refused_saying_which():
    hotwords = Hotwords.from_items(["TOM", "HUCKLEBERRY FINN", "BECKY"], "hotwords")
    hotwords.check_within(3, 16, "hotwords")
    with pytest.raises(HotwordsError, match="hotwords: 3 hotwords, more than the 2 allowed"):
        hotwords.check_within(2, 16, "hotwords")
    with pytest.raises(HotwordsError, match="'HUCKLEBERRY FINN' is 16 characters, more than the 15 allowed"):
        hotwords.check_within(3, 15, "hotwords")


# ----------------------------------------------------------------------------------- the graph

def walk(graph: ContextGraph, text: str) -> tuple[float, float]:
    """(the bonus of ``text`` at the end of an utterance, the bonus it holds before that ends)."""
    node, held = graph.start, 0.0
    for char in text:
        node, change = node.step(char)
        held += change
    return held + node.finish(), held


@pytest.mark.parametrize("text, final, held", [
    ("FINN", 4, 4),
    ("I MET FINN", 4, 4),
    ("I MET FIN", 0, 3),  # on its way to FINN: held, then taken back
    ("FINNISH", 0, 0),  # a hotword matches whole words
    ("SFINN", 0, 0),
    ("FINN FINN", 8, 8),
    ("FINN ", 4, 4),
    ("HUCKLEBERRY FINN", 32, 32),  # the phrase's own boost (2 per character), not FINN's besides
    ("HUCKLEBERRY FIN", 0, 30),
    ("HUCKLEBERRY FINNS", 0, 0),
    ("HUCKLEBERRY", 0, 22),
    ("NEW YORK", 4, 8),  # YORK completed, NEW YORK CITY not
    ("NEW YORK CITY", 13, 13),
    ("NEW YORK CITX", 4, 4),
    ("", 0, 0),
])
def test_the_graph_keeps_a_completed_phrases_bonus_and_takes_back_a_partial_match(text, final, held):
    graph = ContextGraph({"FINN": 1.0, "HUCKLEBERRY FINN": 2.0, "YORK": 1.0, "NEW YORK CITY": 1.0})
    assert walk(graph, text) == (final, held)


def test_the_graphs_bonus_is_the_hotwords_a_text_holds_whatever_the_near_misses():
    # Words over two letters, hotwords among them with shared beginnings (A, AB, ABA, ...): the
    # bonus at the end is the sum of boost x length over the words that are hotwords, however the
    # matches began and failed on the way.
    rng = np.random.default_rng(0)
    for _ in range(300):
        words = sorted({"".join(rng.choice(list("AB"), rng.integers(1, 5))) for _ in range(8)})
        boosts = {w: float(rng.choice([0.5, 1.0, 2.5])) for w in words if rng.random() < 0.5}
        text = " ".join(rng.choice(words, rng.integers(1, 7)))
        expected = sum(boosts.get(w, 0.0) * len(w) for w in text.split())
        assert walk(ContextGraph(boosts), text)[0] == pytest.approx(expected), (boosts, text)


def test_a_phrases_bonus_gives_back_the_oov_penalty_its_words_pay_and_only_while_it_matches():
    lm = meetings_lm()  # knows HUCK (so HUCKLEBERRY pays at HUCKL), no word in F
    graph = ContextGraph({"FINN": 1.0, "HUCKLEBERRY FINN": 1.0}, lm.word_starts, oov_penalty=16.0)
    assert walk(graph, "FINN") == (4 + 16, 4 + 16)
    assert walk(graph, "FIN") == (0, 3 + 16)
    assert walk(graph, "HUCKLEBERRY FINN") == (16 + 2 * 16, 16 + 2 * 16)
    assert walk(graph, "HUCK") == (0, 4)  # HUCK is the LM's: it pays nothing, gets nothing back


# ----------------------------------------------------------------------------- the beam search

def test_a_boost_moves_the_beam_to_a_hotword_where_the_acoustics_hesitate():
    # "I MET FINN" with its second N faint (0.3 against the blank's 0.7): the acoustics say FIN.
    log_probs = spell("I MET FINN", {9: {"N": 0.3}})
    finn = Hotwords({"FINN": DEFAULT_BOOST})
    assert greedy_decode(log_probs[None].astype(np.float32)) == ["I MET FIN"]
    assert BeamSearch(16).decode(log_probs) == "I MET FIN"
    assert BeamSearch(16, hotwords=finn).decode(log_probs) == "I MET FINN"
    # With an LM that knows neither, FIN and FINN pay its OOV penalty: the beam drops the name
    # altogether; the hotword brings it back.
    assert BeamSearch(16, **with_lm()).decode(log_probs) == "I MET I"
    assert BeamSearch(16, hotwords=finn, **with_lm()).decode(log_probs) == "I MET FINN"
    # A stream's search, fed chunk by chunk, ends where decoding the whole ends.
    for settings in ({}, with_lm()):
        stream = BeamSearch(16, hotwords=finn, **settings).start()
        partials = []
        for part in np.split(log_probs, [3, 4, 11, 17]):
            stream.advance(part)
            partials.append(stream.result())
        assert partials[-1] == "I MET FINN", partials
    # Where the acoustics are sure, a hotword does not win: TOM stays TOM, however TIM is boosted.
    assert BeamSearch(16, hotwords=Hotwords({"TIM": DEFAULT_BOOST}), **with_lm()).decode(spell("I MET TOM")) \
        == "I MET TOM"


@pytest.mark.parametrize("settings", [{}, with_lm()], ids=["no LM", "LM"])
@pytest.mark.parametrize("text, phrase", [("I MET FINN", "FINNEGAN"), ("I MET FINN", "FINLAND"),
                                          ("I MET TOM", "TOMMY"), ("I MET TOM", "I MEAN")])
def test_a_hypothesis_that_starts_a_hotword_and_goes_on_otherwise_scores_as_without_hotwords(
        settings, text, phrase):
    # The whole utterance goes by a hotword's beginning and leaves it: the same best text with the
    # same score. (Wide enough that the partial match, which holds beam room while it lasts, does
    # not crowd out the hypothesis that wins.)
    log_probs = spell(text)
    plain, biased = BeamSearch(64, **settings).start(), BeamSearch(64, hotwords=Hotwords({phrase: 2.5}),
                                                                    **settings).start()
    plain.advance(log_probs), biased.advance(log_probs)
    (plain_text, plain_score), (biased_text, biased_score) = plain.best(), biased.best()
    assert biased_text == plain_text and biased_score == pytest.approx(plain_score, abs=1e-9)


def test_without_hotwords_decoding_is_what_it_was():
    rng = np.random.default_rng(2)
    noisy = np.log(rng.dirichlet(np.full(len(LABELS), 0.3), size=150))
    for settings in ({}, with_lm()):
        plain, empty = BeamSearch(16, **settings).start(), BeamSearch(16, hotwords=Hotwords(), **settings).start()
        plain.advance(noisy), empty.advance(noisy)
        assert empty.best() == plain.best() and empty.contexts is None
    # an empty list leaves greedy greedy (no beam search to pay for) and the settings as they were
    assert DecoderConfig().for_hotwords(Hotwords()) == DecoderConfig()
    decode = make_decoder(DecoderConfig(), hotwords=Hotwords())
    assert not isinstance(decode, BeamSearch)
    assert decode(noisy) == greedy_decode(noisy[None].astype(np.float32))[0]


def test_greedy_given_hotwords_decodes_with_the_beam_at_the_configs_width():
    finn = Hotwords({"FINN": DEFAULT_BOOST})
    log_probs = spell("I MET FINN", {9: {"N": 0.3}})
    assert DecoderConfig().for_hotwords(finn) == DecoderConfig("beam")
    decode = make_decoder(DecoderConfig(beam_width=8), hotwords=finn)
    assert isinstance(decode, BeamSearch) and decode.beam_width == 8 and decode(log_probs) == "I MET FINN"
    # width 1 with hotwords is a search of one prefix, no longer the best path
    assert make_decoder(DecoderConfig("beam", beam_width=1), hotwords=finn)(log_probs) == "I MET FINN"
    # a search with an LM keeps it (and its word-score cache) when given a request's hotwords
    search = BeamSearch(16, **with_lm())
    biased = search.with_hotwords(finn)
    assert biased.lm is search.lm and biased._word_cache is search._word_cache and search.hotwords is None
    assert biased.decode(log_probs) == "I MET FINN" and search.decode(log_probs) == "I MET I"


# ------------------------------------------------------------------------ every verb that decodes

@pytest.fixture(scope="module")
def uniform_checkpoint(tmp_path_factory):
    """A small forward-only model (it can stream) whose classifier weights are zero: whatever the
    audio, every frame's log-probabilities are uniform, so what the decoder makes of them is known
    on any CPU. The beam search tries the first 8 labels of a frame (', A-G): greedy says "'",
    the beam some string of those, and a boosted FACADE (six of them) wins."""
    import mindspore as ms

    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ds2stream.network import build_model
    from ds2stream.presets import MEL_SLIDING, PRESETS

    config = dataclasses.replace(PRESETS["tiny"].model, bidirectional=False, lookahead=3,
                                 num_bins=MEL_SLIDING.num_bins)
    network = build_model(config)
    for parameter in network.get_parameters():
        if parameter.name.startswith("fc."):
            parameter.set_data(ms.Tensor(np.zeros(parameter.shape, np.float32)))
    path = tmp_path_factory.mktemp("hotwords") / "uniform.ckpt"
    save_checkpoint(network, path, {"format": CHECKPOINT_FORMAT, "labels": LABELS, "model_config": config.to_dict(),
                                    "feature_config": MEL_SLIDING.to_dict()})
    return path


@pytest.fixture(scope="module")
def small_test_shards(tmp_path_factory, sample_dir):
    """One recording of each speaker and digit of the sample's test split (60), as shards."""
    from ds2stream.data.shards import write_shard_set
    from testkit.corpora import librispeech_tree

    folder = tmp_path_factory.mktemp("hotword-shards")
    corpus = librispeech_tree(sample_dir / "test", folder / "corpus", per_chapter=1)
    write_shard_set([corpus / "dev-clean"], folder / "shards")
    return folder / "shards"


@pytest.fixture(scope="module")
def speech(sample_flacs) -> np.ndarray:
    """About 3 s of real speech, as int16 samples."""
    from ds2stream.data.audio import read_audio

    return np.concatenate([read_audio(path)[0] for path in sample_flacs[:6]])


def test_transcribe_and_eval_favour_their_hotwords(uniform_checkpoint, small_test_shards, speech, tmp_path):
    from click.testing import CliRunner

    from ds2stream.cli import cli

    audio, names = tmp_path / "speech.wav", tmp_path / "names.txt"
    soundfile.write(audio, speech, 16000, subtype="PCM_16")
    names.write_text("Facade :5\n")
    runner = CliRunner()

    def transcribe(*options):
        result = runner.invoke(cli, ["transcribe", "--model", str(uniform_checkpoint), *options, str(audio)])
        assert result.exit_code == 0, result.output
        return result.output.strip().split("\t")[1]

    assert transcribe() == "'"  # greedy
    assert transcribe("--hotwords", str(names)) == "FACADE"  # the beam search, as greedy cannot favour it
    streamed = runner.invoke(cli, ["transcribe", "--stream", "--model", str(uniform_checkpoint), "--hotwords",
                                   str(names), str(audio)])  # decoded as the chunks come
    assert json.loads(streamed.output.splitlines()[-1])["text"] == "FACADE", streamed.output
    (tmp_path / "plain.txt").write_text("FACADE\n")  # the default boost, set by --hotword-boost
    assert transcribe("--hotwords", str(tmp_path / "plain.txt"), "--hotword-boost", "5") == "FACADE"

    bad = tmp_path / "bad.txt"
    bad.write_text("FACADE :x\n")
    for args, code, message in ((["--hotwords", str(bad)], 1, f"Error: {bad}:1: the boost ':x' is not a number"),
                                (["--hotword-boost", "2"], 2, "give --hotwords too")):
        result = runner.invoke(cli, ["transcribe", "--model", str(uniform_checkpoint), *args, str(audio)])
        assert result.exit_code == code and message in result.output and "Traceback" not in result.output

    reports = {}
    for name, options in (("plain", ["--decoder", "beam", "--beam-width", "4"]),
                          ("hotwords", ["--beam-width", "4", "--hotwords", str(names)])):
        result = runner.invoke(cli, ["eval", "--shards", str(small_test_shards), "--model", str(uniform_checkpoint),
                                     *options, "--out", str(tmp_path / f"{name}.json")])
        assert result.exit_code == 0 and "60 utterances" in result.output, result.output
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    hyps = {name: [u["hyp"] for u in report["utterances_detail"]] for name, report in reports.items()}
    assert "FACADE" not in hyps["plain"] and hyps["hotwords"].count("FACADE") >= 50, hyps["hotwords"]
    assert reports["hotwords"]["hotwords"] == str(names) and reports["hotwords"]["decoder"]["decoder"] == "beam"


def test_serve_takes_a_requests_hotwords_by_post_and_by_stream_and_refuses_too_many(uniform_checkpoint, speech):
    import urllib.parse

    from testkit.servers import multipart_body, served

    wav = io.BytesIO()
    soundfile.write(wav, speech, 16000, format="WAV", subtype="PCM_16")
    body = wav.getvalue()
    with served(uniform_checkpoint, "--max-hotwords", "2", "--max-hotword-chars", "12",
                "--hotword-boost", "5") as url:
        status, plain = post_to(url, "/transcribe", body, "audio/wav")
        assert status == 200 and plain["text"] == "'"  # the server decodes greedily
        # a query parameter with a raw body; a form field (the lines of a hotwords file) with a file
        query = urllib.parse.urlencode({"hotwords": "FACADE"})
        status, answer = post_to(url, f"/transcribe?{query}", body, "audio/wav")
        assert status == 200 and answer["text"] == "FACADE", answer
        form, content_type = multipart_form({"hotwords": b"# a hotwords file\nFACADE :5\n", "file": body})
        status, answer = post_to(url, "/transcribe", form, content_type)
        assert status == 200 and answer["text"] == "FACADE" and answer["words"][0]["word"] == "FACADE", answer
        status, answer = post_to(url, "/transcribe", *multipart_body("file", body))
        assert status == 200 and answer["text"] == "'"  # the next request has none
        refusals = [
            (f"/transcribe?{urllib.parse.urlencode({'hotwords': 'A B C'.replace(' ', chr(10))})}",
             "hotwords: 3 hotwords, more than the 2 allowed"),
            (f"/transcribe?{urllib.parse.urlencode({'hotwords': 'HUCKLEBERRY FINN'})}",
             "is 16 characters, more than the 12 allowed"),
            (f"/transcribe?{urllib.parse.urlencode({'hotwords': 'FACADE :x'})}",
             "hotwords:1: the boost ':x' is not a number"),
        ]
        for path, message in refusals:
            status, answer = post_to(url, path, body, "audio/wav")
            assert status == 400 and message in answer["error"], (path, answer)

        # /stream: the start message's "hotwords", phrases or {phrase, boost}
        messages, code, _ = asyncio.run(stream(url, speech, {"sample_rate": 16000, "hotwords": [
            {"phrase": "facade", "boost": 5}, "BAD"]}))
        assert code == 1000 and messages[-1]["text"] == "FACADE", messages
        messages, code, _ = asyncio.run(stream(url, speech, {"sample_rate": 16000}))
        assert code == 1000 and messages[-1]["text"] == "'"
        for hotwords, expected in ((["A", "B", "C"], "hotwords: 3 hotwords, more than the 2 allowed"),
                                   ("FACADE", "hotwords must be a list"),
                                   ([{"phrase": "A", "boost": 0}], "hotwords[0]: the boost must be a positive")):
            messages, code, reason = asyncio.run(stream(url, speech, {"sample_rate": 16000, "hotwords": hotwords}))
            assert (code, messages) == (1008, []) and reason.startswith(expected), (hotwords, code, reason)


def post_to(url: str, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def multipart_form(fields: dict[str, bytes]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request of these fields, in this order."""
    boundary = "ds2stream-hotwords-boundary"
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode() + value + b"\r\n"
             for name, value in fields.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def stream(url: str, samples: np.ndarray, start: dict) -> tuple[list, int, str]:
    """One /stream session: every message the server sent, its close code and reason."""
    import aiohttp

    messages, reason = [], ""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url.replace("http", "ws") + "/stream") as ws:
            await ws.send_json(start)
            for at in range(0, len(samples), 8000):
                if ws.closed:
                    break
                await ws.send_bytes(samples[at: at + 8000].astype("<i2").tobytes())
            if not ws.closed:
                await ws.send_json({"end": True})
            while True:
                message = await ws.receive(timeout=30)
                if message.type == aiohttp.WSMsgType.TEXT:
                    messages.append(json.loads(message.data))
                    continue
                if message.type == aiohttp.WSMsgType.CLOSE:
                    reason = message.extra or ""
                break
            return messages, ws.close_code, reason
