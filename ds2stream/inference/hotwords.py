"""Hotwords (contextual biasing): words and phrases the beam search favours, each with a boost.

People name things a general model has never heard (people, places, products); a hotword list
moves the CTC prefix beam search (``beam.py``) toward them, as sherpa-onnx's and WeNet's
servers do.

**The list** (:class:`Hotwords`): one phrase a line, optionally followed by its own boost, a
colon and a number as the line's last word (as sherpa-onnx's hotwords file; WeNet's context list
is the phrases alone); ``#`` starts a comment line; blank lines are skipped::

    HUCKLEBERRY FINN :2.5
    Tom Sawyer
    St. Petersburg

Phrases are normalised as transcripts are (numbers written out, then ``data.text.normalize``:
``St. Petersburg`` -> ``ST PETERSBURG``). A boost is a bonus in natural log per character of the
phrase (the spaces between its words included); a phrase without one takes the list's default
(``--hotword-boost``, :data:`DEFAULT_BOOST`). serve's ``hotwords`` field takes the same lines,
/stream's start message a JSON list (:meth:`Hotwords.from_items`).

**The search** (:class:`ContextGraph`): the phrases, each between two spaces (a hotword matches
whole words: FINN earns nothing inside FINNISH), make a prefix tree of characters with failure
links (Aho-Corasick, as icefall's and sherpa-onnx's context graphs). A hypothesis walks it as
its text grows (the text taken to begin with a space and, at the end, to end with one). Each
node holds the bonus of a hypothesis there (the boost times the phrase's characters matched), so
a hypothesis gains a phrase's bonus character by character, which keeps it in the beam while
the evidence comes. When its next character leaves the tree, the partial match's bonus is taken
back: the hypothesis moves to the longest end of its text that still starts some phrase, with
that node's bonus; at the end of the utterance an unfinished match is taken back too. A text
that began like a hotword and went on otherwise ends with no bonus from it; a completed phrase
keeps its bonus for good. Phrases that share a beginning share its nodes, which hold the largest
of their bonuses; a completed phrase holds exactly its own. (Phrases that overlap, one beginning
with another's last words, may both earn on the words they share.)

With an LM, a word outside its vocabulary pays the beam search's OOV penalty at its first
character no LM word continues; a phrase's bonus holds, from that character on, the penalties
its words have paid. A hypothesis on its way through a phrase pays nothing for its words, and one
that leaves the phrase has the penalty back, as if there were no hotwords; a completed phrase's
words are known words. (The LM's probability of ``<unk>`` for them stays: a boost must outweigh it.)
"""
from __future__ import annotations

import math
from collections import deque
from pathlib import Path

from ..data.text import normalize, write_numbers_out
from ..errors import DataError

#: The bonus (natural log) per character of a phrase that has no boost of its own: a completed
#: FINN gains 4, a likelihood ratio of about 55, enough to win where the acoustics hesitate
#: between it and a neighbour, not where they are sure of another word. Not tuned on a real model
#: yet (``bench/hotwords.py`` measures a list's recall and what it costs elsewhere).
DEFAULT_BOOST = 1.0


class HotwordsError(DataError):
    """A hotword list that cannot be used: the message names the file (or request) and the line."""


class Hotwords:
    """Normalised phrases and each one's boost (per character), with the default for phrases given
    without one (the beam search walks them as a :class:`ContextGraph`). Empty is false."""

    def __init__(self, boosts: dict[str, float] | None = None, default_boost: float = DEFAULT_BOOST):
        _check_boost(default_boost, "the default hotword boost")
        self.boosts, self.default_boost = dict(boosts or {}), default_boost

    def __len__(self) -> int:
        return len(self.boosts)

    def __repr__(self) -> str:
        return f"Hotwords({self.boosts!r}, default_boost={self.default_boost!r})"

    @classmethod
    def read(cls, path, default_boost: float = DEFAULT_BOOST) -> "Hotwords":
        """A hotwords file (see the module docstring); a HotwordsError naming the file and line."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise HotwordsError(f"{path}: not a readable hotwords file ({err})") from None
        return cls.parse(text.splitlines(), str(path), default_boost)

    @classmethod
    def parse(cls, lines, source: str, default_boost: float = DEFAULT_BOOST) -> "Hotwords":
        """Lines of a hotwords file; errors name ``source`` and the line number."""
        hotwords, first_line = cls(default_boost=default_boost), {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{source}:{number}"
            boost = None
            head, _, last = line.rpartition(" ")
            if last.startswith(":"):
                try:
                    boost = float(last[1:])
                except ValueError:
                    raise HotwordsError(f"{where}: the boost {last!r} is not a number (write PHRASE :2.5)") from None
                _check_boost(boost, f"{where}: the boost")
                line = head
            hotwords._add(line, boost, where, f"line {number}", first_line)
        return hotwords

    @classmethod
    def from_items(cls, items, source: str, default_boost: float = DEFAULT_BOOST) -> "Hotwords":
        """A JSON list (the /stream start message's ``hotwords``): phrases, or ``{"phrase", "boost"}``."""
        if not isinstance(items, list):
            raise HotwordsError(f"{source} must be a list of phrases or of {{phrase, boost}}")
        hotwords, first_line = cls(default_boost=default_boost), {}
        for i, item in enumerate(items):
            where = f"{source}[{i}]"
            boost = None
            if isinstance(item, dict):
                unknown = sorted(set(item) - {"phrase", "boost"})
                if unknown or "phrase" not in item:
                    raise HotwordsError(f"{where}: expected {{phrase, boost}}, got keys {sorted(item)}")
                item, boost = item["phrase"], item.get("boost")
                if boost is not None:
                    if isinstance(boost, bool) or not isinstance(boost, (int, float)):
                        raise HotwordsError(f"{where}: the boost {boost!r} is not a number")
                    _check_boost(float(boost), f"{where}: the boost")
            if not isinstance(item, str):
                raise HotwordsError(f"{where}: a phrase is a string, got {item!r}"[:200])
            hotwords._add(item, boost, where, f"item {i}", first_line)
        return hotwords

    def _add(self, raw: str, boost: float | None, where: str, line: str, first_line: dict) -> None:
        """``where``: the file (or request) and ``line``, for errors; ``first_line``: phrase -> its line."""
        phrase = normalize(write_numbers_out(raw))  # as transcripts and LM text are (data.text)
        if not phrase:
            raise HotwordsError(f"{where}: {raw!r} has no letters left once normalised")
        if phrase in self.boosts:
            raise HotwordsError(f"{where}: {phrase!r} is already listed ({first_line[phrase]})")
        first_line[phrase] = line
        self.boosts[phrase] = self.default_boost if boost is None else boost

    def check_within(self, max_phrases: int, max_chars: int, source: str) -> None:
        """A HotwordsError when there are more than ``max_phrases`` phrases or one is longer than
        ``max_chars`` characters (a server's limits on a request's list)."""
        if len(self) > max_phrases:
            raise HotwordsError(f"{source}: {len(self)} hotwords, more than the {max_phrases} allowed")
        longest = max(self.boosts, key=len, default="")
        if len(longest) > max_chars:
            shown = longest if len(longest) <= 40 else longest[:40] + "..."
            raise HotwordsError(f"{source}: {shown!r} is {len(longest)} characters, more than the {max_chars} allowed")

    def merged(self, other: "Hotwords | None") -> "Hotwords":
        """These phrases and ``other``'s (a request's, added to a server's): ``other``'s boost wins."""
        if not other:
            return self
        return Hotwords({**self.boosts, **other.boosts}, self.default_boost)


def _check_boost(boost: float, what: str) -> None:
    if not (math.isfinite(boost) and boost > 0):
        raise HotwordsError(f"{what} must be a positive number, got {boost!r}")


# ------------------------------------------------------------------------------------ the graph

class ContextNode:
    """A node of the prefix tree: the characters matched so far of some phrases (between spaces)."""

    __slots__ = ("children", "fail", "bonus", "kept", "end", "moves")

    def __init__(self):
        self.children: dict[str, ContextNode] = {}
        self.fail: ContextNode = self  # the root's own; every other node's is set by ContextGraph
        self.bonus = 0.0  # what a hypothesis here holds
        self.kept = 0.0  # of it, what completed phrases have earned for good
        self.end: float | None = None  # a phrase ends here: its whole bonus
        self.moves: dict[str, tuple[ContextNode, float]] = {}  # step's answers, worked out once

    def step(self, char: str) -> tuple["ContextNode", float]:
        """The node after ``char`` and the change of the hypothesis's bonus."""
        move = self.moves.get(char)
        if move is None:
            move = self.moves[char] = self._move(char)
        return move

    def _move(self, char: str) -> tuple["ContextNode", float]:
        child = self.children.get(char)
        if child is not None:
            return child, child.bonus - self.bonus
        # The match ends here: the partial bonus goes back, and the longest end of the text that
        # starts some phrase (found along the failure links) brings its own.
        node = self
        while char not in node.children and node.fail is not node:
            node = node.fail
        target = node.children.get(char, node)
        return target, self.kept - self.bonus + target.bonus

    def finish(self) -> float:
        """The change of the bonus at the end of the utterance: a phrase that ends with it is
        completed, an unfinished match taken back."""
        node, change = self.step(" ")
        return change + node.kept - node.bonus


class ContextGraph:
    """The phrases of a :class:`Hotwords` (``boosts``: phrase -> boost per character) as a prefix
    tree with failure links; a hypothesis begins at :attr:`start` (see the module docstring).
    ``word_starts`` and ``oov_penalty``: the beam search's (``lm.NGramLM.word_starts``), whose
    penalties a phrase's bonus gives back."""

    def __init__(self, boosts: dict[str, float], word_starts: frozenset[str] | None = None, oov_penalty: float = 0.0):
        self.root = ContextNode()
        for phrase, boost in boosts.items():
            paid = _penalties_paid(phrase, word_starts, oov_penalty)
            node = self.root
            for i, char in enumerate(f" {phrase} "):
                child = node.children.get(char)
                if child is None:
                    child = node.children[char] = ContextNode()
                node = child
                # the spaces around a phrase earn nothing: a match begins and ends on a word boundary
                node.bonus = max(node.bonus, boost * min(i, len(phrase)) + paid[i])
            node.end = boost * len(phrase) + paid[-1]
        self._link()
        self.start = self.root.children.get(" ", self.root)  # an utterance begins on a word boundary

    def _link(self) -> None:
        """Failure links and kept bonuses, breadth first (a node's failure is shallower than it)."""
        queue = deque()
        for child in self.root.children.values():
            child.fail = self.root
            queue.append(child)
        while queue:
            node = queue.popleft()
            node.kept = max(node.end or 0.0, node.kept, node.fail.kept)
            node.bonus = max(node.bonus, node.kept)
            for char, child in node.children.items():
                fail = node.fail
                while char not in fail.children and fail.fail is not fail:
                    fail = fail.fail
                child.fail = fail.children.get(char, fail)
                child.kept = node.kept  # what the path to it completed; its own end and failure join above
                queue.append(child)


def _penalties_paid(phrase: str, word_starts: frozenset[str] | None, oov_penalty: float) -> list[float]:
    """At each character of the phrase between its two spaces, the OOV penalties its words have
    paid so far: a word outside the LM's vocabulary pays at its first character no LM word continues."""
    paid = [0.0] * (len(phrase) + 2)
    if not word_starts or not oov_penalty:
        return paid
    first = 1  # the word's first character, counting the space before the phrase
    for word in phrase.split(" "):
        left = next((k for k in range(1, len(word) + 1) if word[:k] not in word_starts), None)
        if left is not None:
            for i in range(first + left - 1, len(paid)):
                paid[i] += oov_penalty
        first += len(word) + 1
    return paid
