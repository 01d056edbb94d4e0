"""The word n-gram LM: modified Kneser-Ney against a hand-computed example, normalisation over the
vocabulary, ARPA files in and out, and one-line errors for bad LM files and text."""
import math
import random

import pytest
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.inference.decoding import DecoderConfig, make_decoder
from ds2stream.inference.lm import LMError, build_lm, discounts, read_arpa, write_arpa


def test_discounts_follow_chen_and_goodman():
    # n1..n4 = 4, 2, 1, 1: Y = 4 / (4 + 2*2) = 0.5; D1 = 1 - 2Y*2/4; D2 = 2 - 3Y*1/2; D3+ = 3 - 4Y*1/1
    assert discounts([1, 1, 1, 1, 2, 2, 3, 4, 9], order=1) == pytest.approx((0.5, 1.25, 1.0))
    with pytest.raises(LMError, match="order 2.*--discount-fallback"):
        discounts([1, 1, 2], order=2)
    assert discounts([1, 1, 2], order=2, fallback=True) == (0.5, 1.0, 1.5)


def test_a_bigram_model_computed_by_hand():
    # <s> A B </s> twice, <s> B </s> once; fixed discounts 0.5 / 1 / 1.5 (the text is too small).
    lm = build_lm([["A", "B"], ["A", "B"], ["B"]], order=2, discount_fallback=True)
    # Unigrams from continuation counts: A 1 (after <s>), B 2 (after A, <s>), </s> 1 (after B); total 4,
    # gamma = (0.5*2 + 1*1) / 4 = 0.5, spread uniformly over A, B, </s>, <unk>.
    unigram = {"A": 0.5 / 4 + 0.5 / 4, "B": 1 / 4 + 0.5 / 4, "</s>": 0.5 / 4 + 0.5 / 4, "<unk>": 0.5 / 4}
    for word, p in unigram.items():
        assert lm.log10_prob((), word) == pytest.approx(math.log10(p))
    # After <s>: A twice, B once; gamma(<s>) = (0.5*1 + 1*1) / 3 = 0.5.
    assert lm.log10_prob(("<s>",), "A") == pytest.approx(math.log10(1 / 3 + 0.5 * unigram["A"]))
    assert lm.log10_prob(("<s>",), "B") == pytest.approx(math.log10(0.5 / 3 + 0.5 * unigram["B"]))
    # After A: B twice (gamma 1/2); after B: </s> three times (D3+ 1.5, gamma 1.5/3).
    assert lm.log10_prob(("A",), "B") == pytest.approx(math.log10(1 / 2 + 0.5 * unigram["B"]))
    assert lm.log10_prob(("B",), "</s>") == pytest.approx(math.log10(1.5 / 3 + 0.5 * unigram["</s>"]))
    # Unseen after A: back off with gamma(A); an unknown word is <unk>.
    assert lm.log10_prob(("A",), "A") == pytest.approx(math.log10(0.5 * unigram["A"]))
    assert lm.log10_prob(("A",), "ZEBRA") == pytest.approx(math.log10(0.5 * unigram["<unk>"]))
    expected = math.log10((1 / 3 + 0.5 * unigram["A"]) * (1 / 2 + 0.5 * unigram["B"])
                          * (1.5 / 3 + 0.5 * unigram["</s>"]))
    assert lm.sentence_log10_prob(["A", "B"]) == pytest.approx(expected)


def grammar_sentences(count: int, seed: int = 0) -> list[list[str]]:
    """Sentences of 3-12 words from 600 made-up words with Zipf frequencies: a long tail, so that
    every order has n-grams seen once, twice, three and four times (as real text has)."""
    rng = random.Random(seed)
    syllables = [c + v for c in "BDFGKLMNPRST" for v in "AEIOU"]
    words = [a + b for a in syllables for b in syllables][:600]
    weights = [1 / (rank + 1) for rank in range(len(words))]
    return [rng.choices(words, weights, k=rng.randint(3, 12)) for _ in range(count)]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_is_a_distribution_over_the_vocabulary(order, tmp_path):
    sentences = grammar_sentences(2000)
    lm = build_lm(sentences, order)
    write_arpa(lm, tmp_path / "lm.arpa.gz")
    lm = read_arpa(tmp_path / "lm.arpa.gz")  # through the file, as a decoder gets it
    vocabulary = sorted(lm.vocabulary - {"<s>"})
    contexts = {()} | {tuple(["<s>", *s][max(0, i - order + 1):i + 1]) for s in sentences[:30] for i in range(len(s))}
    contexts |= {("ZEBRA", "ZEBRA", "ZEBRA")[-(order - 1):] if order > 1 else ()}  # unseen: backs off all the way
    for context in contexts:
        total = sum(10 ** lm.log10_prob(context, word) for word in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-5), context


def test_arpa_round_trip_and_header(tmp_path):
    lm = build_lm(grammar_sentences(2000), 3)
    write_arpa(lm, tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    assert "\\data\\" in text and "ngram 3=" in text and text.rstrip().endswith("\\end\\")
    again = read_arpa(tmp_path / "lm.arpa")
    assert again.order == 3 and set(again.prob) == set(lm.prob)
    assert all(abs(again.prob[g] - lm.prob[g]) < 1e-5 for g in lm.prob)


def test_bad_lm_files_are_one_line_errors_naming_the_file(tmp_path):
    write_arpa(build_lm(grammar_sentences(2000), 2), tmp_path / "good.arpa")
    text = (tmp_path / "good.arpa").read_text()
    cases = {
        "missing.arpa": None,
        "truncated.arpa": text[: len(text) // 2],
        "miscounted.arpa": text.replace("ngram 1=", "ngram 1=9"),
        "binary.arpa": "\x00\x01\x02 not text",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        with pytest.raises(LMError, match=name):
            read_arpa(path)
    lowercase = tmp_path / "lowercase.arpa"
    lowercase.write_text(text.replace("BABA", "baba"))
    with pytest.raises(ValueError, match=r"lowercase.arpa.*outside the label set"):
        make_decoder(DecoderConfig("beam", lm=str(lowercase)))


def test_lm_command_builds_from_text_and_shards_and_reports_bad_input(tmp_path, sample_dir):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(s) for s in grammar_sentences(2000)) + "\nIn 1868 the ship left.\n")
    runner = CliRunner()
    done = runner.invoke(cli, ["lm", str(text), "--order", "3", "--out", str(tmp_path / "lm.arpa")])
    assert done.exit_code == 0, done.output
    lm = read_arpa(tmp_path / "lm.arpa")
    assert {"EIGHTEEN", "SIXTY", "EIGHT", "SHIP", "LEFT"} <= lm.vocabulary  # normalised, numbers written out

    shards = tmp_path / "shards"
    assert runner.invoke(cli, ["shard", str(sample_dir / "train"), "--out", str(shards)]).exit_code == 0
    tiny = runner.invoke(cli, ["lm", str(shards), "--order", "3", "--out", str(tmp_path / "digits.arpa")])
    assert tiny.exit_code != 0 and "too little text" in tiny.output and "--discount-fallback" in tiny.output
    done = runner.invoke(cli, ["lm", str(shards), "--order", "2", "--discount-fallback",
                               "--out", str(tmp_path / "digits.arpa")])
    assert done.exit_code == 0, done.output
    assert read_arpa(tmp_path / "digits.arpa").vocabulary - {"<s>", "</s>", "<unk>"} == \
        {"ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"}

    width = runner.invoke(cli, ["eval", "--shards", str(shards), "--model", str(text), "--beam-width", "0"])
    assert width.exit_code != 0 and "'--beam-width': 0 is not in the range x>=1" in width.output
    missing = runner.invoke(cli, ["eval", "--shards", str(shards), "--model", str(text),
                                  "--lm", str(tmp_path / "nope.arpa")])
    assert missing.exit_code != 0 and "nope.arpa: no such file" in missing.output


def test_lm_on_empty_text_text_not_in_utf8_and_a_folder_that_is_no_shard_set_names_each(tmp_path):
    empty, latin1, folder = tmp_path / "empty.txt", tmp_path / "latin1.txt", tmp_path / "notes"
    empty.write_text("")
    latin1.write_bytes("THE CAF\u00c9 OPENED AT NINE\n".encode("latin-1"))
    folder.mkdir()
    (folder / "a.txt").write_text("THE SHIP LEFT\n")
    for given, expected in ((empty, "no words"), (latin1, "latin1.txt: 'utf-8' codec can't decode"),
                            (folder, "not a complete shard set, no index.json")):
        result = CliRunner().invoke(cli, ["lm", str(given), "--out", str(tmp_path / "lm.arpa")])
        assert result.exit_code == 1 and expected in result.output, result.output
        assert not (tmp_path / "lm.arpa").exists()
