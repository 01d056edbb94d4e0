"""Word n-gram language models: estimation with interpolated modified Kneser-Ney, ARPA files.

Why an estimator of our own: KenLM's ``lmplz`` (the usual builder) needs Boost and CMake from the
system, which ``pip install`` cannot bring, and no wheel on PyPI ships it. This one is exact and
small (Chen & Goodman's interpolated modified Kneser-Ney, as ``lmplz`` computes it: three
discounts per order from the counts of counts, continuation counts below the highest order, the
unigram interpolated with the uniform distribution over the vocabulary and ``<unk>``). It holds
every n-gram in Python dicts, about 0.4 KB each (the 4-gram model of the 5-hour sentence corpus:
152 k n-grams, 55 MB): fine for transcripts, not for LibriSpeech's 800 M-word LM text; build that
with ``lmplz`` and pass its ARPA in (the reader takes any ARPA file, with the same cost).

``build_lm`` -> ``NGramLM`` -> ``write_arpa``; ``read_arpa`` -> ``NGramLM``, which the beam
search queries (``log10_prob``).
"""
from __future__ import annotations

import functools
import gzip
import math
from collections import defaultdict
from pathlib import Path

from ..errors import DataError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LOG10_ZERO = -99.0  # what ARPA files write for a probability of zero (<s> as a predicted word)


class LMError(DataError):
    """An LM file that cannot be read, or text that cannot make one."""


class NGramLM:
    """A back-off n-gram model: ``prob[ngram]`` and ``backoff[ngram]`` in log10, as in ARPA."""

    def __init__(self, order: int, prob: dict[tuple, float], backoff: dict[tuple, float]):
        self.order, self.prob, self.backoff = order, prob, backoff
        self.vocabulary = frozenset(ngram[0] for ngram in prob if len(ngram) == 1)

    @functools.cached_property
    def word_starts(self) -> frozenset[str]:
        """Every beginning of a vocabulary word, the empty one and the whole words included."""
        words = self.vocabulary - {BOS, EOS, UNK}
        return frozenset({""} | {word[:i] for word in words for i in range(1, len(word) + 1)})

    def log10_prob(self, context: tuple, word: str) -> float:
        """log10 p(word | context), backing off to shorter contexts; an unknown word is <unk>."""
        if word not in self.vocabulary:
            word = UNK
        context = context[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            found = self.prob.get(context + (word,))
            if found is not None:
                return penalty + found
            if not context:
                return penalty + self.prob.get((UNK,), LOG10_ZERO)
            penalty += self.backoff.get(context, 0.0)
            context = context[1:]

    def sentence_log10_prob(self, words: list[str]) -> float:
        context, total = (BOS,), 0.0
        for word in list(words) + [EOS]:
            total += self.log10_prob(context, word)
            context = (context + (word,))[-(self.order - 1):] if self.order > 1 else ()
        return total


FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz's --discount_fallback


def discounts(adjusted_counts, order: int, fallback: bool = False) -> tuple[float, float, float]:
    """D1, D2, D3+ of one order from the counts of its adjusted counts n1..n4 (Chen & Goodman):
    Y = n1 / (n1 + 2 n2), Dk = k - (k + 1) Y n(k+1) / nk."""
    n = [0] * 5
    for value in adjusted_counts:
        if value <= 4:
            n[value] += 1
    if min(n[1:]) > 0:
        y = n[1] / (n[1] + 2 * n[2])
        found = tuple(k - (k + 1) * y * n[k + 1] / n[k] for k in (1, 2, 3))
        if all(0 < d < k for d, k in zip(found, (1, 2, 3))):
            return found
    if fallback:
        return FALLBACK_DISCOUNTS
    raise LMError(f"too little text for modified Kneser-Ney at order {order} (counts of counts n1..n4 = "
                  f"{n[1:]}); use a lower --order, more text, or --discount-fallback")


def build_lm(sentences, order: int, discount_fallback: bool = False) -> NGramLM:
    """Estimate an interpolated modified Kneser-Ney model of ``order`` from lists of words.

    Adjusted counts a(g): the raw count at the highest order and for n-grams starting at <s>;
    below, the number of distinct words seen before g. For a context h of order n:
    p(w|h) = (a(hw) - D(a(hw))) / sum_v a(hv) + gamma(h) p(w|h'), with h' = h minus its first
    word, gamma(h) = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / sum_v a(hv) (Nk(h): words after h with
    adjusted count k), and below the unigrams the uniform 1/|V| over the words, </s> and <unk>.
    The ARPA back-off of h is gamma(h).
    """
    if order < 1:
        raise LMError(f"order must be at least 1, got {order}")
    raw: list[dict[tuple, int]] = [defaultdict(int) for _ in range(order + 1)]
    for words in sentences:
        if not words:
            continue
        padded = (BOS, *words, EOS)
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                raw[n][padded[i:i + n]] += 1
    if not raw[1]:
        raise LMError("no words to estimate a language model from")

    adjusted: list[dict[tuple, int]] = [{} for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left = defaultdict(int)
        for longer in raw[n + 1]:
            left[longer[1:]] += 1
        adjusted[n] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n].items()}
    del adjusted[1][(BOS,)]  # <s> is never predicted

    vocabulary = sorted({g[0] for g in adjusted[1]} | {EOS, UNK})
    prob: dict[tuple, float] = {}
    backoff: dict[tuple, float] = {}
    lower: dict[tuple, float] = {}
    for n in range(1, order + 1):
        d = (0.0, *discounts(adjusted[n].values(), n, discount_fallback))
        totals: dict[tuple, int] = defaultdict(int)
        kinds: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0])
        for gram, count in adjusted[n].items():
            totals[gram[:-1]] += count
            kinds[gram[:-1]][min(count, 3)] += 1
        gamma = {h: sum(d[k] * kinds[h][k] for k in (1, 2, 3)) / totals[h] for h in totals}
        current = {}
        for gram, count in adjusted[n].items():
            below = lower[gram[1:]] if n > 1 else 1.0 / len(vocabulary)
            current[gram] = (count - d[min(count, 3)]) / totals[gram[:-1]] + gamma[gram[:-1]] * below
        if n == 1:
            for word in vocabulary:  # never counted (<unk>): the uniform share only
                current.setdefault((word,), gamma[()] / len(vocabulary))
        prob.update((gram, math.log10(p)) for gram, p in current.items())
        backoff.update((h, math.log10(g)) for h, g in gamma.items() if h)
        lower = current
    prob[(BOS,)] = LOG10_ZERO
    return NGramLM(order, prob, backoff)


# ------------------------------------------------------------------------------------ ARPA files

def write_arpa(lm: NGramLM, path: Path) -> None:
    by_order = defaultdict(list)
    for gram in lm.prob:
        by_order[len(gram)].append(gram)
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(by_order[n])}" for n in range(1, lm.order + 1)]
    for n in range(1, lm.order + 1):
        lines += ["", f"\\{n}-grams:"]
        for gram in sorted(by_order[n]):
            entry = f"{lm.prob[gram]:.6f}\t{' '.join(gram)}"
            if n < lm.order and gram in lm.backoff:
                entry += f"\t{lm.backoff[gram]:.6f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write("\n".join(lines))


def read_arpa(path: Path) -> NGramLM:
    """Read an ARPA file (plain or .gz), as KenLM's lmplz, SRILM or :func:`write_arpa` write it."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"{path}: no such LM file")
    opener = gzip.open if path.suffix == ".gz" else open
    prob, backoff, declared = {}, {}, {}
    section = None
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = "data"
                elif line == "\\end\\":
                    section = "end"
                    break
                elif line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:-len("-grams:")])
                elif section == "data" and line.startswith("ngram "):
                    n, count = line[len("ngram "):].split("=")
                    declared[int(n)] = int(count)
                elif isinstance(section, int):
                    fields = line.split()
                    gram = tuple(fields[1:1 + section])
                    if len(gram) != section or len(fields) not in (section + 1, section + 2):
                        raise LMError(f"{path}:{number}: not a {section}-gram line: {line[:80]!r}")
                    prob[gram] = float(fields[0])
                    if len(fields) == section + 2:
                        backoff[gram] = float(fields[-1])
                else:
                    raise LMError(f"{path}:{number}: unexpected line {line[:80]!r} (not an ARPA file?)")
    except (UnicodeDecodeError, OSError, EOFError, ValueError) as err:
        if isinstance(err, LMError):
            raise
        raise LMError(f"{path}: not a readable ARPA file ({err})") from None
    if section != "end" or not declared:
        raise LMError(f"{path}: truncated or not an ARPA file (no \\data\\ header or \\end\\ line)")
    for n, count in declared.items():
        found = sum(1 for gram in prob if len(gram) == n)
        if found != count:
            raise LMError(f"{path}: header says {count} {n}-grams, the file has {found}")
    return NGramLM(max(declared), prob, backoff)
