"""CTC prefix beam search: it finds what greedy misses, an LM moves it toward words it knows, it is
deterministic, and its settings travel as JSON."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ds2stream.data.text import LABELS
from ds2stream.inference.beam import BeamSearch
from ds2stream.inference.decoding import DecoderConfig, greedy_decode, make_decoder
from ds2stream.inference.lm import build_lm, write_arpa
from testkit.log_probs import frames, spell


def write_cat_lm(path):
    """A bigram LM of a few sentences about a cat and a dog (CAT, not CAD or CUD)."""
    text = [s.split() for s in ("THE CAT SAT", "THE CAT RAN", "A CAT SAT DOWN", "THE DOG SAT", "THE DOG RAN")] * 3
    write_arpa(build_lm(text, 2, discount_fallback=True), path)


def test_the_beam_sums_alignments_that_greedy_cannot():
    # Two frames, "A" 0.4 and blank 0.6 in each: the best path is blank-blank (""), 0.36, but
    # "A" has three alignments (AA, A_, _A) worth 0.64.
    log_probs = frames({"A": 0.4}, {"A": 0.4})
    assert greedy_decode(log_probs[None].astype(np.float32)) == [""]
    assert BeamSearch(beam_width=4).decode(log_probs) == "A"


def test_the_lm_moves_a_hypothesis_to_the_words_it_knows(tmp_path):
    # "THE CAT SAT": the acoustics lean to CAD (0.55 against 0.4).
    log_probs = spell("THE CAT SAT", {6: {"D": 0.55, "T": 0.4}})
    assert greedy_decode(log_probs[None].astype(np.float32)) == ["THE CAD SAT"]
    assert BeamSearch(beam_width=16).decode(log_probs) == "THE CAD SAT"
    write_cat_lm(tmp_path / "lm.arpa")
    decode = make_decoder(DecoderConfig("beam", beam_width=16, lm=str(tmp_path / "lm.arpa"), alpha=1.0, beta=1.0))
    assert decode(log_probs) == "THE CAT SAT"
    # the LM only weighs: with weight 0 (and no OOV penalty) the acoustics decide again
    plain = make_decoder(DecoderConfig("beam", beam_width=16, lm=str(tmp_path / "lm.arpa"), alpha=0.0, beta=0.0,
                                       oov_penalty=0.0))
    assert plain(log_probs) == "THE CAD SAT"


def test_the_oov_penalty_keeps_words_the_lm_knows_where_the_lm_alone_cannot(tmp_path):
    # "THE CAT SAT" with its A heard rather as U and its T as D (0.65 against 0.3 each): CUD and CAD
    # are words the LM does not know, CAT is.
    log_probs = spell("THE CAT SAT", {5: {"U": 0.65, "A": 0.3}, 6: {"D": 0.65, "T": 0.3}})
    write_cat_lm(tmp_path / "lm.arpa")
    weak = DecoderConfig("beam", beam_width=4, lm=str(tmp_path / "lm.arpa"), alpha=0.1, beta=0.0, oov_penalty=0.0)
    assert make_decoder(weak)(log_probs) == "THE CUD SAT"  # a light LM is outweighed by the acoustics
    assert make_decoder(dataclasses.replace(weak, oov_penalty=5.0))(log_probs) == "THE CAT SAT"
    # words out of the vocabulary can still win where the acoustics are sure of them
    sure = spell("THE CUD SAT")
    assert make_decoder(dataclasses.replace(weak, oov_penalty=5.0))(sure) == "THE CUD SAT"
    with pytest.raises(ValueError, match="the OOV penalty is a cost: 0 or more, got -1"):
        DecoderConfig("beam", lm=str(tmp_path / "lm.arpa"), oov_penalty=-1.0)


def test_width_one_without_lm_is_greedy_on_clean_alignments_and_decoding_is_deterministic():
    rng = np.random.default_rng(0)
    for _ in range(20):
        text = " ".join("".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'"), rng.integers(1, 8)))
                        for _ in range(rng.integers(1, 6)))
        log_probs = spell(text)
        assert BeamSearch(beam_width=1).decode(log_probs) == greedy_decode(log_probs[None].astype(np.float32))[0]
    # The same hypotheses in processes whose string hashes differ (no tie broken by a set's order).
    script = ("import json, numpy as np; from ds2stream.inference.beam import BeamSearch; "
              "from ds2stream.data.text import LABELS; rng = np.random.default_rng(1); "
              "noisy = np.log(rng.dirichlet(np.full(len(LABELS), 0.3), size=120)); "
              "print(json.dumps([BeamSearch(beam_width=w).decode(noisy) for w in (1, 8, 64)]))")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] and len(set(json.loads(runs[0]))) > 1  # and the widths do differ


def test_a_search_fed_chunk_by_chunk_ends_where_decoding_the_whole_ends(tmp_path):
    """A stream's beam search (with an LM) goes on from where it stopped: over any chunking it
    gives what decoding the whole gives, and its partial results on the way are its best so far."""
    write_cat_lm(tmp_path / "lm.arpa")
    rng = np.random.default_rng(3)
    clean = spell("THE CAT SAT", {6: {"D": 0.55, "T": 0.4}})
    noisy = np.log(rng.dirichlet(np.full(len(LABELS), 0.3), size=90))
    for config in (DecoderConfig("beam", beam_width=16, lm=str(tmp_path / "lm.arpa"), alpha=1.0, beta=1.0),
                   DecoderConfig("beam", beam_width=8), DecoderConfig("beam", beam_width=1)):
        search = make_decoder(config)
        for log_probs in (clean, noisy):
            whole = search.decode(log_probs)
            for cuts in ([7], [1, 2, 3, 30], list(range(1, len(log_probs)))):
                stream, partials = search.start(), []
                for part in np.split(log_probs, cuts):
                    stream.advance(part)
                    partials.append(stream.result())
                assert partials[-1] == whole, (config, cuts)
        assert search.decode(clean) == ("THE CAT SAT" if config.lm else "THE CAD SAT")


def test_decoder_settings_travel_as_json(tmp_path):
    write_arpa(build_lm([["A", "B"], ["B"]] * 3, 2, discount_fallback=True), tmp_path / "lm.arpa")
    settings = tmp_path / "decoder.json"
    settings.write_text(json.dumps({"decoder": "beam", "beam_width": 8, "lm": "lm.arpa", "alpha": 0.7, "beta": 2.0}))
    config = DecoderConfig.read(settings)
    assert config.lm == str(tmp_path / "lm.arpa") and config.alpha == 0.7  # relative to the settings file
    settings.write_text(json.dumps({"decoder": "beam", "width": 8}))
    with pytest.raises(ValueError, match=r"decoder.json: unknown decoder settings \['width'\]"):
        DecoderConfig.read(settings)
    with pytest.raises(ValueError, match="beam width must be at least 1, got 0"):
        DecoderConfig("beam", beam_width=0)
