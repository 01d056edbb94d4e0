import numpy as np
import pytest

from ds2stream.data.text import (
    BLANK_INDEX,
    LABELS,
    NUM_CLASSES,
    TextError,
    ctc_min_frames,
    decode,
    encode,
    normalize,
    read_sentences,
    write_numbers_out,
)


def test_label_set_is_the_zoos():
    assert LABELS == "'ABCDEFGHIJKLMNOPQRSTUVWXYZ _"
    assert BLANK_INDEX == 28 == NUM_CLASSES - 1


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("hello world", "HELLO WORLD"),
        ("  Don't   stop ", "DON'T STOP"),
        ("rock-n-roll", "ROCK N ROLL"),
        ("Café naïve", "CAFE NAIVE"),
        ("it\u2019s", "IT'S"),
        ("chapter 12.", "CHAPTER"),
        ("", ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Søren Kierkegaard", "SOREN KIERKEGAARD"),
        ("Ærø", "AERO"),
        ("Łódź", "LODZ"),
        ("Straße", "STRASSE"),
        ("Þórr", "THORR"),
        ("Œuvre", "OEUVRE"),
        ("Đorđe", "DORDE"),
    ],
)
def test_letters_that_unicode_does_not_decompose_are_spelled_out(raw, expected):
    assert normalize(raw, strict=True) == expected  # NFKD alone left Ø, Æ, Ł, Þ, Œ, Đ outside the label set


def test_strict_normalize_names_text_and_characters():
    assert normalize("it's fine", strict=True) == "IT'S FINE"
    with pytest.raises(TextError, match=r"\['1', '2'\].*'chapter 12'"):
        normalize("chapter 12", strict=True)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("chapter 12.", "CHAPTER TWELVE"),
        ("0, 7, 19, 20, 45, 100, 101, 999", "ZERO SEVEN NINETEEN TWENTY FORTY FIVE ONE HUNDRED ONE HUNDRED ONE "
                                            "NINE HUNDRED NINETY NINE"),
        ("1,204,000 men", "ONE MILLION TWO HUNDRED FOUR THOUSAND MEN"),
        ("in 1868 and 2024", "IN EIGHTEEN SIXTY EIGHT AND TWO THOUSAND TWENTY FOUR"),
        ("the 21st, 2nd, 3rd, 12th and 40th", "THE TWENTY FIRST SECOND THIRD TWELFTH AND FORTIETH"),
        ("3.05 m", "THREE POINT ZERO FIVE M"),
        ("room 7b", "ROOM SEVEN B"),
    ],
)
def test_numbers_are_written_out_before_normalising(raw, expected):
    assert normalize(write_numbers_out(raw)) == expected


def test_encode_decode_round_trip():
    text = "IT'S A TEST"
    indices = encode(text)
    assert indices.dtype == np.int32
    assert indices[0] == LABELS.index("I") and indices[2] == 0
    assert decode(indices) == text


def test_encode_rejects_unnormalised_text():
    with pytest.raises(TextError, match="'a' is not a label"):
        encode("a")
    with pytest.raises(TextError):
        encode("A_B")  # the blank is not a character of a transcript


def test_ctc_needs_a_blank_between_equal_neighbours():
    import mindspore as ms
    from mindspore import nn

    assert [ctc_min_frames(t) for t in ("", "SEVEN", "THREE", "ALL ALL")] == [0, 5, 6, 9]
    # The rule is the loss's: THREE is finite with 6 output frames, infinite with 5.
    ctc = nn.CTCLoss(blank=BLANK_INDEX, reduction="none")
    labels = ms.Tensor(encode("THREE")[None])
    for frames, finite in ((6, True), (5, False)):
        log_probs = ms.Tensor(np.full((frames, 1, NUM_CLASSES), -np.log(NUM_CLASSES), np.float32))
        loss = ctc(log_probs, labels, ms.Tensor([frames], ms.int32), ms.Tensor([5], ms.int32)).asnumpy()
        assert np.isfinite(loss).all() == finite


def test_read_sentences_takes_ids_when_every_line_has_one(tmp_path):
    with_ids = tmp_path / "a.trans.txt"
    with_ids.write_text("84-121-0000 Chapter 12, in 1868.\n84-121-0001 GO  home\n\n84-121-0002 go home\n")
    assert read_sentences(with_ids) == ["CHAPTER TWELVE IN EIGHTEEN SIXTY EIGHT", "GO HOME"]  # the repeat once
    plain = tmp_path / "b.txt"
    plain.write_text("The 2 ships left.\nThey came back\n")
    assert read_sentences(plain) == ["THE TWO SHIPS LEFT", "THEY CAME BACK"]  # "The" is no id
