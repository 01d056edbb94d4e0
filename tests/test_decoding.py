import numpy as np
import pytest

from ds2stream.data.text import BLANK_INDEX, LABELS, encode
from ds2stream.errors import DataError
from ds2stream.inference.beam import BeamSearch
from ds2stream.inference.decoding import greedy_decode, greedy_decode_reference


def one_hot_log_probs(indices, classes=len(LABELS)):
    probs = np.full((len(indices), classes), 1e-4, dtype=np.float32)
    probs[np.arange(len(indices)), indices] = 1.0
    return np.log(probs / probs.sum(1, keepdims=True))


def test_collapses_repeats_and_drops_blanks():
    # H H _ E L L _ L O _ -> HELLO (the blank separates the two Ls)
    path = list(encode("HH")) + [BLANK_INDEX] + list(encode("ELL")) + [BLANK_INDEX] + list(encode("LO"))
    log_probs = one_hot_log_probs(path + [BLANK_INDEX])[None]
    assert greedy_decode(log_probs) == ["HELLO"]


@pytest.mark.parametrize("time_major", [False, True])
def test_matches_reference_on_random_input(time_major):
    rng = np.random.default_rng(0)
    batch, frames = 6, 80
    log_probs = np.log(rng.dirichlet(np.full(len(LABELS), 0.3), size=(batch, frames))).astype(np.float32)
    lengths = np.array([frames, 0, 1, 17, frames - 1, 40])
    if time_major:
        log_probs = np.ascontiguousarray(log_probs.transpose(1, 0, 2))
    got = greedy_decode(log_probs, lengths, time_major=time_major)
    assert got == greedy_decode_reference(log_probs, lengths, time_major=time_major)
    assert got[1] == ""
    assert sum(len(t) for t in got) > 50  # the input really produced text


def test_time_major_and_batch_major_agree():
    rng = np.random.default_rng(1)
    log_probs = rng.standard_normal((3, 50, len(LABELS))).astype(np.float32)
    lengths = [50, 20, 0]
    assert greedy_decode(log_probs, lengths) == greedy_decode(
        log_probs.transpose(1, 0, 2), lengths, time_major=True
    )


def test_blank_index_is_a_parameter():
    labels = "_ab"
    log_probs = one_hot_log_probs([1, 1, 0, 1, 2, 2], classes=3)[None]
    assert greedy_decode(log_probs, labels=labels, blank=0) == ["aab"]
    assert greedy_decode(log_probs, labels=labels, blank=2) == ["a_a"]


def test_ties_go_to_the_lowest_index_like_argmax():
    log_probs = np.zeros((1, 3, len(LABELS)), dtype=np.float32)
    assert greedy_decode(log_probs) == greedy_decode_reference(log_probs) == ["'"]


@pytest.mark.parametrize("length", [-1, 11])
def test_out_of_range_length_is_a_clear_error(length):
    log_probs = np.zeros((2, 10, len(LABELS)), dtype=np.float32)
    with pytest.raises(ValueError, match=f"length {length} of utterance 1 is outside 0..10"):
        greedy_decode(log_probs, [10, length])


def test_shape_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="classes, the label set has 29"):
        greedy_decode(np.zeros((1, 5, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="3 lengths for a batch of 2"):
        greedy_decode(np.zeros((2, 5, 29), dtype=np.float32), [1, 2, 3])
    with pytest.raises(ValueError, match="must be 3-D"):
        greedy_decode(np.zeros((5, 29), dtype=np.float32))


def test_nan_log_probs_are_rejected():
    log_probs = np.zeros((2, 5, len(LABELS)), dtype=np.float32)
    log_probs[1, 3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN.*utterance 1, frame 3"):
        greedy_decode(log_probs)
    # frames past an utterance's length are never read
    assert greedy_decode(log_probs, [5, 3]) == ["'", "'"]


def test_nan_log_probs_are_a_data_error_in_every_decoder():
    # a broken model's outputs, not a bug: the command line says so in one line
    log_probs = np.zeros((1, 5, len(LABELS)), dtype=np.float32)
    log_probs[0, 2, 4] = np.nan
    for decode in (greedy_decode, greedy_decode_reference, lambda x: BeamSearch(beam_width=4).decode(x[0])):
        with pytest.raises(DataError, match="NaN.*frame 2.*the model that made them is broken"):
            decode(log_probs)
