"""Hotwords: the list (a file or a request's, normalised, errors naming the file and line) and the
context graph (a completed phrase keeps its bonus, a partial match ends with none)."""
import numpy as np
import pytest

from ds2stream.inference.hotwords import DEFAULT_BOOST, ContextGraph, Hotwords, HotwordsError
from ds2stream.inference.lm import build_lm

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
