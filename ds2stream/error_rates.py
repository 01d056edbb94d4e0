"""Word and character error rates (WER, CER) from text alone: no network, no decoder.

Rates are corpus-level: total edit operations / total reference words (or characters), the
convention of LibriSpeech results and of the zoo's published WER. ``error_counts`` is the one core
function (Levenshtein alignment via python-Levenshtein, counting substitutions, deletions and
insertions); everything else sums its counts.

Edge cases: an empty hypothesis is all deletions (WER 1 for that utterance); an empty reference
has no words, so its hypothesis words are all insertions: they add to the corpus edits while the
reference total stays the same, and that utterance's own rate is reported as 0 if the hypothesis
is empty too and as inf otherwise.
"""
from __future__ import annotations

import dataclasses

import Levenshtein


@dataclasses.dataclass
class ErrorCounts:
    """Edit operations aligning a hypothesis to a reference, and the reference's length."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        if self.reference_length == 0:
            return 0.0 if self.edits == 0 else float("inf")
        return self.edits / self.reference_length

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(*(getattr(self, f.name) + getattr(other, f.name)
                             for f in dataclasses.fields(ErrorCounts)))


def error_counts(reference, hypothesis) -> ErrorCounts:
    """Align two sequences (strings for characters, lists of words for words) and count edits."""
    counts = ErrorCounts(reference_length=len(reference))
    for operation, _, _ in Levenshtein.editops(reference, hypothesis):
        if operation == "replace":
            counts.substitutions += 1
        elif operation == "delete":
            counts.deletions += 1
        else:
            counts.insertions += 1
    return counts


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    return error_counts(reference.split(), hypothesis.split())


def char_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Character edits on normalised text with single spaces (spaces count as characters)."""
    return error_counts(" ".join(reference.split()), " ".join(hypothesis.split()))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate: summed word edits / summed reference words."""
    return sum((word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)), ErrorCounts()).rate


def cer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus character error rate: summed character edits / summed reference characters."""
    return sum((char_errors(r, h) for r, h in zip(references, hypotheses, strict=True)), ErrorCounts()).rate
