"""CTC prefix beam search over characters, with a word n-gram LM by shallow fusion.

No lexicon: any character sequence is a hypothesis; the LM scores each word when it ends (at a
space, and at the end of the utterance, with </s>), as DeepSpeech's and PaddleSpeech's decoders
do. A prefix's score is

    log p_ctc(prefix | audio) + alpha * ln p_lm(words) + beta * len(words)

where p_ctc sums over every alignment of the prefix (blank-ending and not, kept apart), and a
word outside the LM's vocabulary costs ``oov_penalty`` more, charged at its first character that
no vocabulary word continues: a misspelt word leaves the beam while its prefix is still short,
where the LM alone could only weigh it once it ended. Per
frame only the characters that hold ``prune`` of the frame's probability mass (at most
``max_candidates`` of them) are tried: CTC outputs are peaky, so this loses nothing measurable
and makes the search cost scale with the beam, not with the label set. Width 1 without an LM is
the best path, exactly as greedy decoding (see ``decode``).

With hotwords (``hotwords.py``) each prefix also walks their context graph, and the bonus it holds
there is part of its score: a prefix on its way through a phrase stays in the beam (its words pay
no OOV penalty), one that leaves the phrase loses what it had gained. Without hotwords the search
is what it was, step for step.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..data.text import BLANK_INDEX, LABELS
from ..errors import DataError
from .hotwords import ContextGraph, Hotwords
from .lm import NGramLM

LN10 = math.log(10)
NEG_INF = float("-inf")


def _log_add(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


class _Prefix:
    __slots__ = ("blank", "non_blank", "lm_score", "words", "partial")

    def __init__(self, blank=NEG_INF, non_blank=NEG_INF, lm_score=0.0, words=(), partial=""):
        self.blank, self.non_blank = blank, non_blank
        self.lm_score, self.words, self.partial = lm_score, words, partial

    def acoustic(self) -> float:
        return _log_add(self.blank, self.non_blank)


class BeamSearch:
    """Decode (T, C) log-probabilities of one utterance; see the module docstring."""

    def __init__(self, beam_width: int = 32, lm: NGramLM | None = None, alpha: float = 0.5, beta: float = 0.0,
                 oov_penalty: float = 0.0, labels: str = LABELS, blank: int = BLANK_INDEX, prune: float = 0.999,
                 max_candidates: int = 8, hotwords: Hotwords | None = None):
        self.beam_width, self.lm, self.alpha, self.beta = beam_width, lm, alpha, beta
        self.oov_penalty = oov_penalty
        # every beginning of a vocabulary word ("" too): a partial word outside it is out of vocabulary
        self._word_starts = lm.word_starts if lm is not None and oov_penalty else None
        self._set_hotwords(hotwords)
        self.labels, self.blank, self.prune, self.max_candidates = labels, blank, prune, max_candidates
        self.space = labels.index(" ")
        self._word_cache: dict[tuple, float] = {}

    def _word_score(self, context: tuple, word: str) -> float:
        """alpha * ln p(word | context) + beta, cached (the same words recur across prefixes)."""
        key = (context, word)
        score = self._word_cache.get(key)
        if score is None:
            if self.lm is None:
                score = self.beta
            else:
                score = self.alpha * self.lm.log10_prob(context, word) * LN10 + self.beta
            self._word_cache[key] = score
        return score

    def _context(self, words: tuple) -> tuple:
        order = self.lm.order if self.lm else 1
        return (("<s>",) + words)[-(order - 1):] if order > 1 else ()

    def _set_hotwords(self, hotwords: Hotwords | None) -> None:
        self.hotwords = hotwords or None  # an empty list is none
        # the phrases' bonuses give back the OOV penalties their words pay here
        self._graph = ContextGraph(hotwords.boosts, self._word_starts, self.oov_penalty) if self.hotwords else None

    def with_hotwords(self, hotwords: Hotwords | None) -> "BeamSearch":
        """This search (its LM, its settings) with these hotwords instead: a request's."""
        biased = copy.copy(self)  # shares the LM and the word-score cache
        biased._set_hotwords(hotwords)
        return biased

    def decode(self, log_probs: np.ndarray) -> str:
        search = self.start()
        search.advance(log_probs)
        return search.result()

    __call__ = decode

    def start(self) -> "PrefixSearch":
        """A search that goes on as frames arrive (a stream): ``advance`` with each chunk's
        log-probabilities, ``result`` at any time; over all the chunks it is :meth:`decode`."""
        return PrefixSearch(self)

    def _checked(self, log_probs: np.ndarray) -> np.ndarray:
        log_probs = np.asarray(log_probs, dtype=np.float64)
        if log_probs.ndim != 2 or log_probs.shape[1] != len(self.labels):
            raise ValueError(f"log_probs must be (frames, {len(self.labels)}), got {log_probs.shape}")
        nan_frames = np.flatnonzero(np.isnan(log_probs).any(axis=1))
        if nan_frames.size:
            raise DataError(f"log-probs hold NaN (frame {int(nan_frames[0])}): the model that made them is broken")
        return log_probs

    def _final_score(self, prefix: _Prefix) -> float:
        score = prefix.acoustic() + prefix.lm_score
        words = prefix.words
        if prefix.partial:
            score += self._word_score(self._context(words), prefix.partial)
            words = words + (prefix.partial,)
        if self.lm is not None:
            score += self.alpha * self.lm.log10_prob(self._context(words), "</s>") * LN10
        return score



class PrefixSearch:
    """One utterance's beam search in progress (``BeamSearch.start``)."""

    def __init__(self, search: BeamSearch):
        self.search = search
        self.beams = {"": _Prefix(blank=0.0)}
        # With hotwords: each prefix's node in their graph, kept beside the beams (not in _Prefix)
        # so that a search without them does not pay for it.
        self.contexts = {"": search._graph.start} if search._graph else None
        # One prefix kept and nothing to fuse: the best path. Summing the one prefix's alignments
        # instead can keep it over the frame's best character (1 of the demo's 300 test
        # utterances: SIX against greedy's SIGX), and width 1 is meant to be greedy.
        self.best_path = search.beam_width == 1 and search.lm is None and search.hotwords is None
        self.tokens: list[int] = []
        self.last = -1

    def advance(self, log_probs: np.ndarray) -> None:
        s = self.search
        log_probs = s._checked(log_probs)
        if self.best_path:
            for k in log_probs.argmax(axis=1).tolist():
                if k != self.last and k != s.blank:
                    self.tokens.append(k)
                self.last = k
            return
        # The characters tried per frame, all frames at once: the most probable first, until they
        # hold `prune` of the frame's mass.
        order = np.argsort(-log_probs, axis=1, kind="stable")[:, : s.max_candidates]
        top = np.take_along_axis(log_probs, order, axis=1)
        mass = np.cumsum(np.exp(top), axis=1)
        keep = np.minimum((mass < s.prune * np.exp(log_probs).sum(axis=1, keepdims=True)).sum(axis=1) + 1,
                          order.shape[1])
        beams, contexts = self.beams, self.contexts
        hot = contexts is not None
        for t in range(log_probs.shape[0]):
            candidates = list(zip(order[t, : keep[t]].tolist(), top[t, : keep[t]].tolist()))
            next_beams: dict[str, _Prefix] = {}
            next_contexts: dict = {}  # of the prefixes that grow a character this frame

            def entry(text, parent, words=None, lm_score=None, partial=None):
                found = next_beams.get(text)
                if found is None:
                    found = next_beams[text] = _Prefix(
                        lm_score=parent.lm_score if lm_score is None else lm_score,
                        words=parent.words if words is None else words,
                        partial=parent.partial if partial is None else partial)
                return found

            for text, prefix in beams.items():
                total = prefix.acoustic()
                last = text[-1] if text else None
                for c, logp in candidates:
                    if c == s.blank:
                        e = entry(text, prefix)
                        e.blank = _log_add(e.blank, total + logp)
                        continue
                    char = s.labels[c]
                    if char == last:
                        e = entry(text, prefix)  # the repeat collapses into the same prefix
                        e.non_blank = _log_add(e.non_blank, prefix.non_blank + logp)
                        if prefix.blank == NEG_INF:
                            continue
                        source = prefix.blank  # a blank between: the character again
                    else:
                        source = total
                    if c == s.space:
                        if not prefix.partial:  # a space with no word before it adds nothing
                            e = entry(text, prefix)
                            e.non_blank = _log_add(e.non_blank, source + logp)
                            continue
                        words = prefix.words + (prefix.partial,)
                        score = prefix.lm_score + s._word_score(s._context(prefix.words), prefix.partial)
                        if hot:
                            score += _walk(contexts, next_contexts, text, char)
                        e = entry(text + char, prefix, words=words, lm_score=score, partial="")
                    else:
                        partial, lm_score = prefix.partial + char, None
                        starts = s._word_starts
                        if starts is not None and partial not in starts and prefix.partial in starts:
                            lm_score = prefix.lm_score - s.oov_penalty  # it has just left the vocabulary
                        if hot:
                            lm_score = (prefix.lm_score if lm_score is None else lm_score) + _walk(
                                contexts, next_contexts, text, char)
                        e = entry(text + char, prefix, partial=partial, lm_score=lm_score)
                    e.non_blank = _log_add(e.non_blank, source + logp)
            ranked = sorted(next_beams.items(), key=lambda item: (-(item[1].acoustic() + item[1].lm_score), item[0]))
            beams = dict(ranked[: s.beam_width])
            if hot:  # a kept prefix grew this frame, or is one of the last frame's
                contexts = {text: next_contexts[text] if text in next_contexts else contexts[text] for text in beams}
        self.beams, self.contexts = beams, contexts

    def result(self) -> str:
        """The best hypothesis of the frames so far, scored as if the utterance ended here."""
        if self.best_path:
            return "".join(self.search.labels[k] for k in self.tokens)  # exactly as greedy_decode
        return self.best()[0]

    def best(self) -> tuple[str, float]:
        """The best hypothesis of the frames so far and its score, as if the utterance ended here
        (an unfinished hotword taken back)."""
        def final(item):
            text, prefix = item
            score = self.search._final_score(prefix)
            if self.contexts is not None:
                score += self.contexts[text].finish()
            return score, text

        score, text = max(map(final, self.beams.items()))
        return text.strip(), score


def _walk(contexts: dict, next_contexts: dict, text: str, char: str) -> float:
    """``text`` + ``char`` in the hotwords' graph: its node into ``next_contexts``; the change of bonus."""
    node, bonus = contexts[text].step(char)
    next_contexts[text + char] = node
    return bonus
