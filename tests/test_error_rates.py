"""WER/CER: hand-computed cases and the corpus convention."""
import pytest

from ds2stream.error_rates import ErrorCounts, cer, char_errors, wer, word_errors

CASES = [
    # reference, hypothesis, (substitutions, deletions, insertions), reference words
    ("THE CAT SAT", "THE CAT SAT", (0, 0, 0), 3),
    ("THE CAT SAT", "THE BAT SAT", (1, 0, 0), 3),
    ("THE CAT SAT", "THE SAT", (0, 1, 0), 3),
    ("THE CAT SAT", "THE CAT SAT DOWN", (0, 0, 1), 3),
    ("THE CAT SAT", "", (0, 3, 0), 3),  # an empty hypothesis is all deletions
    ("", "HELLO THERE", (0, 0, 2), 0),  # an empty reference: all insertions
    ("A B C D", "B C D E", (0, 1, 1), 4),
]


@pytest.mark.parametrize("reference, hypothesis, ops, words", CASES)
def test_word_errors_by_hand(reference, hypothesis, ops, words):
    counts = word_errors(reference, hypothesis)
    assert (counts.substitutions, counts.deletions, counts.insertions) == ops
    assert counts.reference_length == words


def test_utterance_rates_including_empty_reference():
    assert word_errors("THE CAT SAT", "").rate == 1.0
    assert word_errors("THE CAT SAT", "THE BAT SAT").rate == pytest.approx(1 / 3)
    assert word_errors("", "").rate == 0.0
    assert word_errors("", "HELLO").rate == float("inf")


def test_character_errors_count_spaces():
    assert char_errors("AB CD", "AB CD").edits == 0
    counts = char_errors("AB CD", "ABCD")  # the space deleted
    assert (counts.deletions, counts.reference_length) == (1, 5)
    assert char_errors("SEVEN", "SEVN").rate == pytest.approx(1 / 5)


def test_corpus_rate_is_summed_edits_over_summed_reference_not_a_mean_of_rates():
    references = ["ONE", "TWO THREE FOUR FIVE"]
    hypotheses = ["", "TWO THREE FOUR FIVE"]
    # per-utterance rates 1.0 and 0.0 average to 0.5; the corpus rate is 1 edit / 5 words
    assert wer(references, hypotheses) == pytest.approx(0.2)
    assert cer(references, hypotheses) == pytest.approx(3 / 22)
    assert wer(["", "A B"], ["X", "A B"]) == pytest.approx(0.5)  # insertions on an empty reference count


def test_error_counts_add_up():
    total = ErrorCounts(1, 2, 3, 10) + ErrorCounts(1, 0, 0, 5)
    assert (total.edits, total.reference_length, total.rate) == (7, 15, pytest.approx(7 / 15))
