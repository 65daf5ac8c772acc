"""What the difficulty estimate looks at: named signals, and hashed n-grams.

The text is tokenised by the classifier's featuriser (:meth:`router.classify.features.Featurizer
.ngrams`: English words, single CJK characters, single symbols, numbers as one token, and the
32-bit keys of every unigram, bigram and trigram). From that one vectorised pass:

* **signals** (:data:`NAMES`), each with a name people can read in an explanation:

  - per concept of :mod:`router.difficulty.lexicon`, ``log1p`` of how many of its cue phrases
    occur (matched by n-gram key against a small table laid out by bucket);
  - the structural signals: length, quantities, number density, questions, sentences, lines,
    answer options, formulas. Length counts a CJK character as 0.6 of a token, about what a
    Chinese prompt takes over an English one with the same content;
  - the *kind* of prompt (multiple choice, code, logic puzzle, word problem with quantities,
    knowledge question, other), and the structural signals again within each kind: "length"
    does not mean the same thing in a maths word problem (more steps) as in a reading passage,
    and a linear model can only learn that from the product.

* **hashed n-grams**: each key mapped to one of ``2**bits`` buckets. They learn the vocabulary of
  one kind of traffic (a team refitting on its own outcomes); vocabulary does not carry across
  datasets, so the shipped estimate does without them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from router.classify.features import MAX_CHARS, Featurizer, NGrams, truncate
from router.classify.material import split
from router.difficulty.lexicon import CONCEPTS, STRUCTURAL

U32 = np.uint32
_MIX = 0x9E3779B1  # multiplicative hashing of n-gram keys into the estimate's tables
_MIX32 = U32(_MIX)
_CUE_BITS = 14
#: Buckets of the hashed n-grams a refitted estimate learns (2**16: 256 KiB of float32).
SIGNAL_BITS = 16

KINDS: tuple[str, ...] = ("multiple choice", "code", "logic puzzle", "word problem",
                          "knowledge question", "other")
#: Structural signals (and cue concepts) repeated within each kind.
WITHIN_KIND: tuple[str, ...] = (
    "length", "quantities", "number density", "sentences", "questions", "formulas", "negation",
    "constraints", "multi-step wording",
)

_K = len(CONCEPTS)
_S = len(STRUCTURAL)
_BASE = (*CONCEPTS, *STRUCTURAL)
_INDEX = {name: i for i, name in enumerate(_BASE)}
_WITHIN = tuple(_INDEX[n] for n in WITHIN_KIND)

NAMES: tuple[str, ...] = (
    *_BASE,
    *(f"kind: {k}" for k in KINDS),
    *(f"{n} ({k})" for k in KINDS for n in WITHIN_KIND),
)

#: Symbols and short n-grams counted for the structural signals, in the same pass as the
#: concepts' cues (full-width and Chinese punctuation fold to ASCII: 。 is ".", ？ is "?").
_MARKS: dict[str, tuple[str, ...]] = {
    "question mark": ("?",),
    "sentence end": (".", "!"),
    "answer option": (*(f"{c} {p}" for c in "abcde" for p in ".)"),
                      *(f"( {c} )" for c in "abcde")),
    "formula": ("=", "^", "$", "\\", "≤", "≥", "∑", "∫", "√", "π"),
}
#: A CJK character (3 UTF-8 bytes) counts this much of a token towards "length".
CJK_TOKEN = 0.6


_NO_BUCKETS = np.zeros(0, dtype=np.intp)


class Extracted(NamedTuple):
    """One text's features: the named signals and the buckets of its n-grams."""

    signals: list[float]
    buckets: npt.NDArray[np.intp]
    tokens: int


def _at_least(n: int) -> float:
    """The threshold on a ``log1p`` signal that means "at least ``n``" (float-safe)."""
    return math.log1p(n) - 1e-9


_TWO, _THREE = _at_least(2), _at_least(3)


def kind_of(signals: list[float]) -> int:
    """Which of :data:`KINDS` a prompt is, from its base signals (first match wins)."""
    if signals[_INDEX["answer options"]] >= _TWO:
        return 0
    if signals[_INDEX["code"]] >= _TWO:
        return 1
    if signals[_INDEX["logic puzzle"]] >= _THREE:
        return 2
    if signals[_INDEX["quantities"]] >= _TWO:
        return 3
    if signals[_INDEX["knowledge lookup"]] > 0 or signals[_INDEX["questions"]] > 0:
        return 4
    return 5


class DifficultyFeaturizer:
    """Signals and n-gram buckets of a text. Build once; thread-safe."""

    def __init__(self, featurizer: Featurizer, bits: int) -> None:
        self.featurizer = featurizer
        self.bits = bits
        self.n_hashed = 1 << bits
        self._shift = U32(32 - bits)
        self._cue_shift = U32(32 - _CUE_BITS)
        self.dropped_cues: list[str] = []
        self._cue_key, self._cue_id = self._build_cues()

    def _build_cues(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.intp]]:
        size = 1 << _CUE_BITS
        keys = np.zeros(size, dtype=U32)
        keys[0] = 1  # an empty bucket holds a key that cannot land in it
        ids = np.zeros(size, dtype=np.intp)
        taken: dict[int, int] = {}
        groups = [*CONCEPTS.values(), *_MARKS.values()]
        for cid, phrases in enumerate(groups):
            for phrase in phrases:
                key = self.featurizer.phrase_key(phrase)[0]
                b = ((key * _MIX) & 0xFFFFFFFF) >> (32 - _CUE_BITS)
                if b in taken:
                    if taken[b] != key:
                        self.dropped_cues.append(phrase)
                    continue
                taken[b] = key
                keys[b] = key
                ids[b] = cid
        return keys, ids

    def extract(self, text: str) -> Extracted:
        """Signals and n-gram buckets of ``text``, tokenised as the classifier's request path
        does (instruction and pasted material apart, :meth:`LinearModel.score_parsed`)."""
        if len(text) > MAX_CHARS:
            text = truncate(text)
        instruction, material = split(text)
        f = self.featurizer
        return self.extract_parsed(f.ngrams(instruction),
                                   f.ngrams(material) if material else None, text)

    def extract_parsed(self, ng: NGrams, material: NGrams | None, text: str,
                       buckets: bool = True) -> Extracted:
        """:meth:`extract` of a text the classifier already tokenised (the request path reuses
        its n-grams: no second pass over the text). ``buckets=False`` skips the hashed buckets
        (an estimate without hashed weights does not read them)."""
        t = len(ng.starts)
        numbers = ng.numbers
        keys = ng.keys
        if material is not None and len(material.starts):
            t += len(material.starts)
            numbers += material.numbers
            keys = np.concatenate((keys, material.keys))
        signals = [0.0] * len(NAMES)
        if t == 0:
            signals[len(_BASE) + KINDS.index("other")] = 1.0
            return Extracted(signals, np.zeros(0, dtype=np.intp), 0)
        mixed = keys * _MIX32
        cue = (mixed >> self._cue_shift).astype(np.intp)
        hits = (self._cue_key.take(cue) == keys).nonzero()[0]
        marks = [0, 0, 0, 0]  # question marks, sentence ends, answer options, formulas
        if len(hits):
            for c in self._cue_id.take(cue.take(hits)).tolist():
                if c < _K:
                    signals[c] += 1.0
                else:
                    marks[c - _K] += 1
            for i in range(_K):
                if signals[i]:
                    signals[i] = math.log1p(signals[i])
        cjk = (len(text.encode("utf-8", "surrogatepass")) - len(text)) // 2
        k = _K
        signals[k] = math.log1p(max(t - (1.0 - CJK_TOKEN) * cjk, 1.0))
        signals[k + 1] = math.log1p(numbers)
        signals[k + 2] = numbers / t
        signals[k + 3] = math.log1p(marks[0])
        signals[k + 4] = math.log1p(marks[0] + marks[1])
        signals[k + 5] = math.log1p(text.count("\n"))
        signals[k + 6] = math.log1p(marks[2])
        signals[k + 7] = math.log1p(marks[3])
        kind = kind_of(signals)
        base = len(_BASE)
        signals[base + kind] = 1.0
        at = base + len(KINDS) + kind * len(WITHIN_KIND)
        for j, i in enumerate(_WITHIN):
            signals[at + j] = signals[i]
        if not buckets:
            return Extracted(signals, _NO_BUCKETS, t)
        return Extracted(signals, (mixed >> self._shift).astype(np.intp), t)
