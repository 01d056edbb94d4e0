"""Transcripts: the label set, LibriSpeech-style normalisation, and label encoding.

This module is the only place that knows the label set and the blank index; the loss, the
decoder and the evaluation import them from here.

Normalisation rule (``normalize``):
  1. Unicode is folded to ASCII where a letter has an accent (``É`` -> ``E``), letters that
     Unicode does not decompose are spelled out (``Ø`` -> ``O``, ``Æ`` -> ``AE``, ``Ł`` -> ``L``,
     ``ß`` -> ``SS``, ``Þ`` -> ``TH``: ``LETTERS``), and typographic apostrophes become ``'``.
  2. Letters are upper-cased.
  3. Any other character outside the label set (digits, punctuation, hyphens, symbols) becomes
     a space, so words are never glued together (``ROCK-N-ROLL`` -> ``ROCK N ROLL``).
  4. Runs of spaces collapse to one; leading and trailing spaces go.
With ``strict=True`` step 3 raises :class:`TextError` naming the text and the characters instead.
"""
from __future__ import annotations

import lzma
import re
import unicodedata

import numpy as np

from ..errors import DataError

#: The zoo's DeepSpeech2 labels: apostrophe, A-Z, space, and the CTC blank last.
LABELS = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ _"
BLANK = "_"
BLANK_INDEX = LABELS.index(BLANK)  # 28
NUM_CLASSES = len(LABELS)  # 29
#: Characters a normalised transcript may contain (all labels but the blank).
ALPHABET = frozenset(LABELS) - {BLANK}

_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"}
#: Latin letters that NFKD leaves whole (no base letter plus accent), as English spells them.
LETTERS = {
    "Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ł": "L", "ł": "l", "ß": "ss", "ẞ": "SS",
    "Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "Ħ": "H", "ħ": "h", "Ŀ": "L", "ŀ": "l",
    "ĸ": "K", "Ŋ": "NG", "ŋ": "ng", "ſ": "s", "Ŧ": "T", "ŧ": "t", "ı": "i", "Ɨ": "I", "ɨ": "i",
}
_FOLD = str.maketrans({**_APOSTROPHES, **LETTERS})
_CHAR_TO_INDEX = {c: i for i, c in enumerate(LABELS) if c != BLANK}


class TextError(DataError):
    """A transcript holds characters that are not in the label set."""


def _fold(text: str) -> str:
    """Steps 1 and 2 of the rule: accents, undecomposable letters and typographic apostrophes to
    ASCII, upper case."""
    text = text.translate(_FOLD)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def normalize(text: str, strict: bool = False) -> str:
    """Normalise a transcript to the label set (see the module docstring for the rule).

    :param text: any transcript.
    :param strict: raise :class:`TextError` on a character outside the label set instead of
        turning it into a space.
    :return: upper-case text over ``'``, ``A``-``Z`` and single spaces.
    """
    folded = _fold(text)
    outside = sorted({c for c in folded if c not in ALPHABET and not c.isspace()})
    if outside and strict:
        raise TextError(f"characters outside the label set {outside!r} in transcript {text!r}")
    cleaned = "".join(c if c in ALPHABET else " " for c in folded)
    return " ".join(cleaned.split())


_ONES = ("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN "
         "SIXTEEN SEVENTEEN EIGHTEEN NINETEEN").split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SCALES = ((10**12, "TRILLION"), (10**9, "BILLION"), (10**6, "MILLION"), (1000, "THOUSAND"))
_ORDINAL_ENDINGS = {"ONE": "FIRST", "TWO": "SECOND", "THREE": "THIRD", "FIVE": "FIFTH", "EIGHT": "EIGHTH",
                    "NINE": "NINTH", "TWELVE": "TWELFTH"}
# 1,234 | 3.14 | 21st | 1868: digits with thousands commas, a decimal part, an ordinal suffix.
_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:(st|nd|rd|th)\b)?", re.IGNORECASE)


def _cardinal(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " HUNDRED" + ("" if n % 100 == 0 else " " + _cardinal(n % 100))
    for scale, name in _SCALES:
        if n >= scale:
            rest = n % scale
            return f"{_cardinal(n // scale)} {name}" + ("" if rest == 0 else " " + _cardinal(rest))
    raise AssertionError(n)


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_ENDINGS:
        last = _ORDINAL_ENDINGS[last]
    elif last.endswith("Y"):
        last = last[:-1] + "IETH"
    else:
        last += "TH"
    return f"{head} {last}".strip()


def _number_words(match: re.Match) -> str:
    digits, decimals, suffix = match.group(1).replace(",", ""), match.group(2), match.group(3)
    n = int(digits)
    if len(digits) == 4 and 1100 <= n <= 1999 and n % 100 >= 10 and not decimals and not suffix:
        words = f"{_cardinal(n // 100)} {_cardinal(n % 100)}"  # a year, as it is read: EIGHTEEN SIXTY EIGHT
    elif len(digits) > 15:
        words = " ".join(_ONES[int(d)] for d in digits)  # not a quantity anyone reads out
    else:
        words = _cardinal(n)
    if decimals:
        words += " POINT " + " ".join(_ONES[int(d)] for d in decimals)
    elif suffix:
        words = _ordinal(words)
    return f" {words} "


def write_numbers_out(text: str) -> str:
    """Spell numbers as words, as LibriSpeech's transcripts have them (``1,204`` -> ``ONE THOUSAND
    TWO HUNDRED FOUR``, ``21st`` -> ``TWENTY FIRST``, ``3.5`` -> ``THREE POINT FIVE``, a year such as
    ``1868`` -> ``EIGHTEEN SIXTY EIGHT``). For text that is read aloud from its normalised form (the
    speech corpus tool): :func:`normalize` alone turns digits into spaces."""
    return " ".join(_NUMBER.sub(_number_words, text).split())


def read_sentences(path) -> list[str]:
    """The sentences of a text file, numbers written out and normalised, duplicates dropped, in
    order: ``<id> <text>`` lines (as ``.trans.txt`` files and the LJ Speech list: taken to have an
    id when every line's first word holds a digit) or one sentence a line; ``.xz`` files are read
    compressed."""
    opener = lzma.open if str(path).endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        lines = [line.strip() for line in lines if line.strip()]
    has_ids = bool(lines) and all(any(c.isdigit() for c in line.split()[0]) for line in lines)
    texts = [line.split(maxsplit=1)[1] if has_ids and len(line.split()) > 1 else "" if has_ids else line
             for line in lines]
    return list(dict.fromkeys(s for s in (normalize(write_numbers_out(t)) for t in texts) if s))


def encode(text: str) -> np.ndarray:
    """Map a normalised transcript to label indices (int32). Raises TextError on other characters."""
    try:
        return np.fromiter((_CHAR_TO_INDEX[c] for c in text), dtype=np.int32, count=len(text))
    except KeyError as err:
        raise TextError(
            f"character {err.args[0]!r} is not a label; normalise {text!r} first"
        ) from None


def ctc_min_frames(text: str) -> int:
    """Output frames CTC needs for a transcript: one per label, plus a blank between each pair of
    equal neighbours (``THREE`` needs 6). With fewer the CTC loss is infinite."""
    return len(text) + sum(a == b for a, b in zip(text, text[1:]))


def decode(indices) -> str:
    """Map label indices back to text (the inverse of :func:`encode`; blanks are kept as ``_``)."""
    return "".join(LABELS[int(i)] for i in indices)
