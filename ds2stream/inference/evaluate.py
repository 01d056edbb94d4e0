"""Evaluation: word and character error rates, and the eval loop over a shard set.

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
import time

import Levenshtein
import numpy as np

from .decoding import greedy_decode

#: Eval batches: a padded-frame budget (40,000 frames = 400 s of audio in a batch; the network is
#: in eval mode, so no activations are kept for a backward pass) and the number of length buckets.
EVAL_MAX_FRAMES = 40000
EVAL_NUM_BUCKETS = 8


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


@dataclasses.dataclass
class EvalReport:
    """The result of evaluating a model on a shard set."""

    words: ErrorCounts
    chars: ErrorCounts
    utterances: int
    empty_hypotheses: int
    audio_seconds: float
    wall_seconds: float
    padding_ratio: float
    results: list  # per utterance: id, ref, hyp, wer, cer

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate

    @property
    def real_time_factor(self) -> float:
        return self.wall_seconds / max(self.audio_seconds, 1e-9)

    def summary(self) -> dict:
        return {"wer": self.wer, "cer": self.cer, "utterances": self.utterances,
                "empty_hypotheses": self.empty_hypotheses, "audio_hours": self.audio_seconds / 3600,
                "wall_seconds": self.wall_seconds, "real_time_factor": self.real_time_factor,
                "padding_ratio": self.padding_ratio,
                "word_edits": dataclasses.asdict(self.words), "char_edits": dataclasses.asdict(self.chars)}


def transcribe_batch(network, features: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Greedy transcripts of one padded batch (B, 1, bins, T) through the network."""
    from mindspore import Tensor

    log_probs, output_lengths = network(Tensor(features), Tensor(lengths.astype(np.int32)))
    return greedy_decode(log_probs.asnumpy(), output_lengths.asnumpy(), time_major=True)


def evaluate(network, shard_set, *, max_frames: int = EVAL_MAX_FRAMES, num_buckets: int = EVAL_NUM_BUCKETS,
             workers: int = 1) -> EvalReport:
    """Evaluate ``network`` (a DeepSpeech2 cell) on every utterance of a ``pipeline.ShardSet``.

    Batches are bucketed (never padded to the zoo's 35 s) and decoded greedily by the native kernel.
    """
    from ..pipeline import BatchSampler, BatchSource, EpochIterator

    network.set_train(False)
    sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, num_buckets=num_buckets,
                           max_frames=max_frames, shuffle=False)
    source = BatchSource(shard_set, sampler, network.config.output_lengths)
    words, chars, results = ErrorCounts(), ErrorCounts(), []
    empty, audio_seconds = 0, 0.0
    started = time.perf_counter()
    epoch = EpochIterator(source, epoch=0, num_workers=workers)
    for _, batch in epoch:
        hypotheses = transcribe_batch(network, batch["features"], batch["feature_lengths"])
        for position, hypothesis, real in zip(batch["rows"], hypotheses, batch["mask"]):
            if not real:
                continue
            record_id = shard_set.ids[int(position)].as_py()
            reference = shard_set.text(int(position))
            w, c = word_errors(reference, hypothesis), char_errors(reference, hypothesis)
            words, chars = words + w, chars + c
            empty += hypothesis == ""
            audio_seconds += shard_set.num_samples[int(position)] / shard_set.feature_config.sample_rate
            results.append({"id": record_id, "ref": reference, "hyp": hypothesis, "wer": w.rate, "cer": c.rate})
    results.sort(key=lambda r: r["id"])
    return EvalReport(words, chars, len(results), empty, audio_seconds, time.perf_counter() - started,
                      epoch.report.padding_ratio, results)

