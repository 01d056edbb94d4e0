"""Evaluation: the eval loop over a shard set (the network once, then a decoder and the error
counts of ``error_rates``), and the grid search of the LM weights on a dev set."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..error_rates import ErrorCounts, char_errors, word_errors
from .decoding import DecoderConfig, make_decoder, read_lm

#: Eval batches: a padded-frame budget (40,000 frames = 400 s of audio in a batch; the network is
#: in eval mode, so no activations are kept for a backward pass) and the number of length buckets.
EVAL_MAX_FRAMES = 40000
EVAL_NUM_BUCKETS = 8


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
    decode_seconds: float = 0.0  # of wall_seconds, spent turning log-probabilities into text

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
                "padding_ratio": self.padding_ratio, "decode_seconds": self.decode_seconds,
                "word_edits": dataclasses.asdict(self.words), "char_edits": dataclasses.asdict(self.chars)}


def network_log_probs(network, features: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Per utterance of one padded batch (B, 1, bins, T): its (frames, classes) log-probabilities."""
    from mindspore import Tensor

    log_probs, output_lengths = network(Tensor(features), Tensor(lengths.astype(np.int32)))
    log_probs, output_lengths = log_probs.asnumpy(), output_lengths.asnumpy()
    return [log_probs[: int(length), b] for b, length in enumerate(output_lengths)]


@dataclasses.dataclass
class NetworkOutputs:
    """A shard set through the network once: what decoding (once, or a grid of LM weights) needs."""
    positions: list  # shard set rows
    log_probs: list  # (frames, classes) per row
    seconds: float
    padding_ratio: float


def run_network(network, shard_set, *, max_frames: int = EVAL_MAX_FRAMES, num_buckets: int = EVAL_NUM_BUCKETS,
                workers: int = 1, rank: int = 0, world_size: int = 1) -> NetworkOutputs:
    """Every utterance of ``shard_set`` through ``network`` in bucketed batches (never padded to
    the zoo's 35 s); with ``world_size`` > 1, only rank ``rank``'s share (each utterance falls to
    exactly one rank)."""
    from ..pipeline import BatchSampler, BatchSource, EpochIterator

    network.set_train(False)
    sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, num_buckets=num_buckets,
                           max_frames=max_frames, shuffle=False, rank=rank, world_size=world_size)
    source = BatchSource(shard_set, sampler, network.config.output_lengths)
    positions, outputs = [], []
    started = time.perf_counter()
    epoch = EpochIterator(source, epoch=0, num_workers=workers)
    for _, batch in epoch:
        for position, log_probs, real in zip(batch["rows"], network_log_probs(network, batch["features"],
                                                                                batch["feature_lengths"]),
                                             batch["mask"]):
            if real:
                positions.append(int(position))
                outputs.append(log_probs)
    return NetworkOutputs(positions, outputs, time.perf_counter() - started, epoch.report.padding_ratio)


def score(shard_set, outputs: NetworkOutputs, decode) -> EvalReport:
    """Decode every utterance with ``decode`` and count the errors against the shard set's text."""
    words, chars, results = ErrorCounts(), ErrorCounts(), []
    empty, audio_seconds = 0, 0.0
    started = time.perf_counter()
    for position, log_probs in zip(outputs.positions, outputs.log_probs):
        hypothesis = decode(log_probs)
        reference = shard_set.text(position)
        w, c = word_errors(reference, hypothesis), char_errors(reference, hypothesis)
        words, chars = words + w, chars + c
        empty += hypothesis == ""
        audio_seconds += shard_set.num_samples[position] / shard_set.feature_config.sample_rate
        results.append({"id": shard_set.ids[position].as_py(), "ref": reference, "hyp": hypothesis,
                        "wer": w.rate, "cer": c.rate})
    results.sort(key=lambda r: r["id"])
    decode_seconds = time.perf_counter() - started
    return EvalReport(words, chars, len(results), empty, audio_seconds, outputs.seconds + decode_seconds,
                      outputs.padding_ratio, results, decode_seconds)


def evaluate(network, shard_set, *, max_frames: int = EVAL_MAX_FRAMES, num_buckets: int = EVAL_NUM_BUCKETS,
             workers: int = 1, decode=None, rank: int = 0, world_size: int = 1) -> EvalReport:
    """Evaluate ``network`` (a DeepSpeech2 cell) on every utterance of a ``pipeline.ShardSet``
    (or on rank ``rank``'s share of them), decoding with ``decode`` (from
    ``decoding.make_decoder``; default: greedy, the native kernel)."""
    decode = decode or make_decoder()
    outputs = run_network(network, shard_set, max_frames=max_frames, num_buckets=num_buckets, workers=workers,
                          rank=rank, world_size=world_size)
    return score(shard_set, outputs, decode)


#: The LM weights ``tune_decoder`` tries by default.
TUNE_ALPHAS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
TUNE_BETAS = (0.0, 1.0, 2.0, 3.0)
#: How many times the grid may grow by a row or column when the best point sits on its upper edge.
TUNE_EXTENSIONS = 4


def tune_decoder(network, shard_set, base: DecoderConfig, alphas=TUNE_ALPHAS, betas=TUNE_BETAS, *,
                 extensions: int = TUNE_EXTENSIONS, max_frames: int = EVAL_MAX_FRAMES, workers: int = 1,
                 log=None, lm=None, hotwords=None):
    """Grid search of the LM weight and word bonus on ``shard_set`` (a dev set): the network runs
    once, the beam search once per point. While the best point is at the largest beta (or alpha),
    the grid grows by one more column (row) at its last spacing, at most ``extensions`` times: a
    best on the edge says the optimum may lie beyond it. Returns (the best config by WER, then CER;
    the grid as (alpha, beta, wer, cer) rows in the order tried). ``lm``: ``base.lm`` already read
    (else read here, once); ``hotwords``: those the tuned settings will decode with."""
    lm = lm or (read_lm(base.lm) if base.lm else None)
    outputs = run_network(network, shard_set, max_frames=max_frames, workers=workers)
    alphas, betas, grid = list(alphas), list(betas), []

    def try_point(alpha, beta):
        config = dataclasses.replace(base, decoder="beam", alpha=alpha, beta=beta)
        report = score(shard_set, outputs, make_decoder(config, lm, hotwords))
        grid.append((alpha, beta, report.wer, report.cer))
        if log:
            log(f"alpha {alpha:g} beta {beta:g}: WER {report.wer:.2%} CER {report.cer:.2%}")

    def best():
        return min(grid, key=lambda row: (row[2], row[3], row[0], row[1]))

    def next_value(values):
        return round(2 * values[-1] - values[-2], 6)

    for alpha in alphas:
        for beta in betas:
            try_point(alpha, beta)
    for _ in range(extensions):
        alpha, beta, _, _ = best()
        if len(betas) > 1 and beta == betas[-1]:
            betas.append(next_value(betas))
            for each in alphas:
                try_point(each, betas[-1])
        elif len(alphas) > 1 and alpha == alphas[-1]:
            alphas.append(next_value(alphas))
            for each in betas:
                try_point(alphas[-1], each)
        else:
            break
    alpha, beta, _, _ = best()
    return dataclasses.replace(base, decoder="beam", alpha=alpha, beta=beta), grid
