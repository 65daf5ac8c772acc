"""Hashed features for the task classifier, vectorised so a 500-token prompt costs microseconds.

1. Every character is mapped through lookup tables (``bytes.translate`` for ASCII text, numpy
   gathers over UTF-16 units otherwise) to a canonical code (lower case, full-width ASCII and
   Chinese punctuation folded to ASCII, digits and separators to 0), and to two flags: "word
   character" and "token character".
2. Tokens are runs of word characters, or single CJK characters, or single symbols. English is
   split into words and Chinese into characters, so token bigrams/trigrams over Chinese are
   character bigrams/trigrams: no segmenter is needed.
3. A token's hash is the polynomial ``sum(code[j] * P**j)`` over its characters, mod 2**32, all
   tokens at once with one ``np.add.reduceat`` (separators have code 0, so the gap after a token
   adds nothing). Digits have code 0 too: every number is the same "number" token.
4. Token unigrams, bigrams and trigrams, and the unigrams/bigrams of the first and last
   ``HEAD_TOKENS`` tokens (where the instruction sits in a long pasted document) are hashed into
   ``2**bits`` buckets of one linear model.
5. Explicit, language-neutral signals (writing verbs, translate/summarise/rewrite cues, maths,
   logic and code cues...; see :mod:`router.classify.lexicon`) are counted by matching the same
   n-gram keys against a table of cue keys laid out by bucket, in the whole text and at its ends.
6. Fenced code and quoted passages are *material* (:mod:`router.classify.material`): steps 2-5
   run on the instruction without them, and the material's n-grams and cues are a family of
   their own (permuted buckets, their own signal weights), so "write an email about this code"
   is decided by what it asks rather than by the code.
"""

from __future__ import annotations

import math
import unicodedata
from bisect import bisect_left
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from router.classify.lexicon import CONCEPTS, STRUCTURAL
from router.classify.material import split

U32 = np.uint32
Array = npt.NDArray[np.uint32]

# Hash constants (odd, 32-bit). Changing any of them changes the model: bump FEATURE_VERSION.
FEATURE_VERSION = 5
_P = 0x01000193  # rolling-hash base (FNV prime)
_Q = 0x9E3779B1  # combines tokens into n-grams
_MIX = 0x85EBCA6B  # multiplicative hashing into buckets
_OFFSET = 0x2545F491  # added to every token hash, so all-digit tokens are not 0
_HEAD_XOR = 0x5BD1E995  # permutes the buckets of the "instruction" family (masked)
_MATERIAL_XOR = 0x27D4EB2F  # permutes the buckets of the "material" family (masked)

# The same constants as numpy scalars, made once: the hot path passes them to ufuncs.
_P32, _Q32, _MIX32, _OFFSET32 = U32(_P), U32(_Q), U32(_MIX), U32(_OFFSET)

HEAD_TOKENS = 24  # tokens at each end of the text that also feed the "instruction" family
MAX_CHARS = 3072  # longest text featurised; longer text keeps its head and tail
HEAD_CHARS = 2048

# Token classes.
SEP, WORD, CJK, SYM = 0, 1, 2, 3

_PUNCT_FOLD = {
    "，": ",", "。": ".", "？": "?", "！": "!", "：": ":", "；": ";", "（": "(", "）": ")",
    "【": "[", "】": "]", "“": '"', "”": '"', "‘": "'", "’": "'", "、": ",", "《": "<",
    "》": ">", "—": "-", "–": "-", "…": ".", "·": ".", "「": '"', "」": '"', "『": '"',
    "』": '"', "〈": "<", "〉": ">", "×": "*", "÷": "/",
}


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF
        or 0x3040 <= o <= 0x30FF or 0xAC00 <= o <= 0xD7AF
    )


def _build_tables() -> tuple[Array, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Canonical code, "is a word character", "is a token character" for every UTF-16 unit.

    Surrogates (the halves of emoji and other astral characters) are symbols.
    """
    canon = np.zeros(0x10000, dtype=U32)
    cls = np.zeros(0x10000, dtype=np.uint8)
    for o in range(0x10000):
        ch = chr(o)
        if 0xD800 <= o <= 0xDFFF:
            canon[o], cls[o] = o, SYM
            continue
        if 0xFF01 <= o <= 0xFF5E:  # full-width ASCII
            ch = chr(o - 0xFEE0)
        ch = _PUNCT_FOLD.get(ch, ch)
        low = ch.lower()
        ch = low if len(low) == 1 else ch
        if ch.isdigit() and ch.isascii():
            canon[o], cls[o] = 0, WORD
        elif _is_cjk(ch):
            canon[o], cls[o] = ord(ch), CJK
        elif ch.isalnum() or ch == "_":
            canon[o], cls[o] = ord(ch), WORD
        elif ch.isspace() or unicodedata.category(ch)[0] in "CZ":
            canon[o], cls[o] = 0, SEP
        else:
            canon[o], cls[o] = ord(ch), SYM
    return canon, cls == WORD, cls != SEP


class NGrams(NamedTuple):
    """The first step of featurising a text (see :meth:`Featurizer.ngrams`)."""

    text: str  # truncated as featurised
    starts: npt.NDArray[np.intp]  # where each token starts (UTF-16 units)
    keys: Array  # n-gram keys: unigrams, then bigrams, then trigrams
    body: npt.NDArray[np.intp]  # the bucket of each key
    numbers: int  # how many tokens are numbers


class Material(NamedTuple):
    """What :meth:`Featurizer.counts` needs of a text's material."""

    tokens: int
    numbers: int  # how many of the tokens are numbers
    ids: list[int]  # the concept of each cue found in it
    chars: int


class Features:
    """One text's features.

    ``text`` is the instruction (the text without its material), ``keys`` its 32-bit n-gram
    keys: the ``n`` token unigrams, then ``n - 1`` bigrams, then ``n - 2`` trigrams. ``idx``
    holds their ``m = len(keys)`` buckets, then up to ``mh`` the buckets of the "instruction"
    family (the first and last unigrams and bigrams again, in permuted buckets), then the
    buckets of the material's n-grams (permuted again). ``counts`` holds the raw explicit
    signals: each concept's cue count in the instruction, at either end of it, and in the
    material, then the structural signals; :attr:`explicit` is their model input (``log1p`` of
    the counts), built on first use because the request path does not need it as an array (see
    :meth:`router.classify.model.LinearModel.score`).
    """

    __slots__ = ("_astral", "_explicit", "counts", "featurizer", "idx", "keys", "m", "material",
                 "mh", "n", "starts", "text")

    def __init__(self, featurizer: Featurizer, text: str, starts: npt.NDArray[np.intp],
                 keys: Array, idx: npt.NDArray[np.intp], counts: list[float], mh: int,
                 material: str = "") -> None:
        self.featurizer = featurizer
        self.text = text
        self.material = material
        self.starts = starts
        self.n = len(starts)
        self.keys = keys
        self.m = len(keys)
        self.mh = mh
        self.idx = idx
        self.counts = counts
        self._explicit: npt.NDArray[np.float32] | None = None
        self._astral: bool | None = None

    @property
    def explicit(self) -> npt.NDArray[np.float32]:
        """The explicit signals as the model sees them: log(1 + count), then the structural."""
        if self._explicit is None:
            out = np.array(self.counts, dtype=np.float32)
            k2 = len(out) - len(STRUCTURAL)
            np.log1p(out[:k2], out=out[:k2])
            self._explicit = out
        return self._explicit

    @property
    def body_scale(self) -> float:
        """n-gram counts are scaled by 1/sqrt(their number): long texts do not score bigger."""
        return 1 / math.sqrt(max(self.m, 1))

    @property
    def head_scale(self) -> float:
        return 1 / math.sqrt(max(self.mh - self.m, 1))

    @property
    def material_scale(self) -> float:
        return 1 / math.sqrt(max(len(self.idx) - self.mh, 1))

    def span(self, i: int, ngram: int = 1) -> str:
        """Text of the n-gram that starts at token ``i`` (slow path, for explanations)."""
        if self._astral is None:  # characters outside the BMP shift UTF-16 positions
            self._astral = not self.text.isascii() and len(
                self.text.encode("utf-16-le", "surrogatepass")) != 2 * len(self.text)
        parts = [self.featurizer.token_text(self.text, self.starts, j, self._astral)
                 for j in range(i, min(i + ngram, self.n))]
        cjk = all(len(x) == 1 and not x.isascii() for x in parts)
        return ("" if cjk else " ").join(parts)


def truncate(text: str, max_chars: int = MAX_CHARS, head: int = HEAD_CHARS) -> str:
    """Keep the head and the tail of a long text: instructions sit at one end or the other."""
    if len(text) <= max_chars:
        return text
    return text[:head] + "\n" + text[len(text) - (max_chars - head - 1):]


class Featurizer:
    """Turns text into hashed features. Build once; :meth:`featurize` is thread-safe."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.n_hashed = 1 << bits
        self._shift = U32(32 - bits)
        # the "instruction" family's permutation of the buckets
        self._head_xor = np.intp(_HEAD_XOR & (self.n_hashed - 1))
        self.material_xor = np.intp(_MATERIAL_XOR & (self.n_hashed - 1))
        self._canon, self._word, self._real = _build_tables()
        self._canon8 = bytes(int(c) if c < 256 else 0 for c in self._canon[:128]) + bytes(128)
        self._word8 = bytes(self._word[:128].astype(np.uint8)) + bytes(128)
        self._real8 = bytes(self._real[:128].astype(np.uint8)) + bytes(128)
        n = 2 * MAX_CHARS + 2  # UTF-16 units: astral characters take two
        inv = pow(_P, -1, 1 << 32)
        self._pow = np.cumprod(np.full(n, _P, dtype=U32), dtype=U32) * U32(inv)
        self._ipow = np.cumprod(np.full(n, inv, dtype=U32), dtype=U32) * U32(_P)
        self.concepts: tuple[str, ...] = (
            tuple(CONCEPTS) + tuple(f"{c} (at either end)" for c in CONCEPTS)
            + tuple(f"{c} (in pasted material)" for c in CONCEPTS) + STRUCTURAL)
        self.dropped_cues: list[str] = []
        self._cue_key, self._cue_id = self._build_cues()

    # -- the hot path --------------------------------------------------------------------------

    def _chars(self, text: str) -> tuple[npt.NDArray[np.uint32] | npt.NDArray[np.uint8],
                                          npt.NDArray[np.bool_]]:
        """Canonical codes per character (UTF-16 unit), and where each token starts.

        A token starts at a token character that does not continue a word (a word character
        right after another word character).
        """
        if text.isascii():  # bytes.translate: a table lookup per byte, in C
            b = text.encode("ascii")
            w = b.translate(self._word8)
            word = np.frombuffer(w, dtype=bool)
            prev = np.frombuffer(b"\0" + w[:-1], dtype=bool) if w else word
            real = np.frombuffer(b.translate(self._real8), dtype=bool)
            return np.frombuffer(b.translate(self._canon8), dtype=np.uint8), real > (word & prev)
        return self._chars_utf16(text)

    def _chars_utf16(self, text: str) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
        cu = np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
        cu = cu.astype(np.intp)  # gathers with native indices are twice as fast
        word = self._word[cu]
        prev = np.concatenate(([False], word[:-1]))
        return self._canon[cu], self._real[cu] > (word & prev)

    def ngrams(self, text: str) -> NGrams:
        """Tokens, n-gram keys and their buckets: what every use of the features starts with.

        Every line here is on the request path: fewest numpy calls, ``take`` rather than fancy
        indexing, results written in place (``python -m router.classify.bench`` measures it).
        """
        if len(text) > MAX_CHARS:
            text = truncate(text)
        canon, first = self._chars(text)
        starts = first.nonzero()[0]
        t = len(starts)
        if t == 0:
            return NGrams(text, starts, np.zeros(0, dtype=U32), np.zeros(0, np.intp), 0)
        h = np.add.reduceat(canon * self._pow[:len(canon)], starts, dtype=U32)
        h *= self._ipow.take(starts)
        numbers = t - np.count_nonzero(h)  # digits and separators have code 0: number tokens
        m = max(3 * t - 3, t)
        keys = np.empty(m, dtype=U32)
        h = np.add(h, _OFFSET32, keys[:t])  # (positional ``out``: keyword arguments cost more)
        bi = np.multiply(h[:-1], _Q32, keys[t:2 * t - 1])
        np.add(bi, h[1:], bi)
        tri = np.multiply(bi[:-1], _Q32, keys[2 * t - 1:])
        np.add(tri, h[2:], tri)
        body = np.empty(m, dtype=np.intp)  # native indices: faster gathers
        np.right_shift(keys * _MIX32, self._shift, out=body, casting="unsafe")
        return NGrams(text, starts, keys, body, int(numbers))

    def head_buckets(self, body: npt.NDArray[np.intp], t: int) -> npt.NDArray[np.intp]:
        """Buckets of the "instruction" family: the first and last ``HEAD_TOKENS`` unigrams and
        bigrams (all of them in a short text), in permuted buckets."""
        e = HEAD_TOKENS
        b = 2 * t - 1  # end of the bigrams
        if t > 2 * e:
            head = np.concatenate((body[:e], body[t - e:t + e], body[b - e:b]))
        else:
            head = body[:b].copy()
        return np.bitwise_xor(head, self._head_xor, head)

    def cue_keys(self) -> Array:
        """Per bucket, the key of the cue that lives there (a key that cannot land there if
        none does)."""
        return self._cue_key

    def share_cue_keys(self, keys: Array) -> None:
        """Use ``keys`` (equal to :meth:`cue_keys`, e.g. a view of a model's packed rows) as
        the cue key table, so it is not kept twice."""
        if not np.array_equal(keys, self._cue_key):
            raise ValueError("not this featurizer's cue keys")
        self._cue_key = keys

    def cue_hits(self, keys: Array, body: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """Positions of the n-grams that are cues (a cue's bucket holds its full key)."""
        # (fancy indexing, not take: the table may be a strided view, which take would copy)
        hits: npt.NDArray[np.intp] = (self._cue_key[body] == keys).nonzero()[0]
        return hits

    def featurize(self, text: str) -> Features:
        """All the features of ``text``, as training and explanations need them."""
        if len(text) > MAX_CHARS:
            text = truncate(text)
        full = len(text)
        text, material = split(text)
        text, starts, keys, body, numbers = self.ngrams(text)
        t = len(starts)
        hits = self.cue_hits(keys, body)
        idx = np.concatenate((body, self.head_buckets(body, t))) if t else body
        mh = len(idx)
        mat = None
        if material:
            _, mstarts, mkeys, mbody, mnumbers = self.ngrams(material)
            if len(mstarts):
                mat = Material(len(mstarts), mnumbers, self.cue_ids(
                    mbody, self.cue_hits(mkeys, mbody)), len(material))
                idx = np.concatenate((idx, np.bitwise_xor(mbody, self.material_xor)))
        if not t and mat is None:  # nothing to read: no signal at all (as score() returns)
            return Features(self, text, starts, keys, idx, [0.0] * len(self.concepts), mh)
        counts = self.counts(full, t, numbers, hits, self.cue_ids(body, hits), mat)
        return Features(self, text, starts, keys, idx, counts, mh, material)

    def counts(self, full: int, t: int, numbers: int, hits: npt.NDArray[np.intp],
               ids: list[int], mat: Material | None = None) -> list[float]:
        """Each concept's cue count in the instruction, at either end of it and in the material,
        then the structural signals. ``full``: the text's length; ``t``: the instruction's
        tokens, ``numbers`` how many of them are numbers; ``hits``: where the cues are (from
        :meth:`cue_hits`), ``ids`` their concepts (:meth:`cue_ids`)."""
        k = len(CONCEPTS)
        counts = [0.0] * (3 * k)
        for c in ids:
            counts[c] += 1.0
        e = HEAD_TOKENS
        if t <= 2 * e:  # a short text is all "ends"
            near = ids
        else:  # the first and last e n-grams of each family (unigrams, bigrams, trigrams)
            b = 2 * t - 1
            m = 3 * t - 3
            pos = hits.tolist()
            near = []
            done = 0
            for lo, hi in ((0, e), (t - e, t + e), (b - e, b + e), (m - e, m)):
                lo = max(lo, done)
                near += ids[bisect_left(pos, lo):bisect_left(pos, hi)]
                done = hi
        for c in near:
            counts[k + c] += 1.0
        counts.append(min(1.0, 4.0 * numbers / t) if t else 0.0)
        counts.append(min(1.0, full / 3000))
        if mat is None:
            counts += (0.0, 0.0)
            return counts
        for c in mat.ids:
            counts[2 * k + c] += 1.0
        counts.append(mat.chars / full)
        counts.append(min(1.0, 4.0 * mat.numbers / mat.tokens))
        return counts

    def cue_ids(self, body: npt.NDArray[np.intp], hits: npt.NDArray[np.intp]) -> list[int]:
        """The concept of each cue hit."""
        return self._cue_id.take(body.take(hits)).tolist() if len(hits) else []

    # -- slow paths: cue table, explanations ---------------------------------------------------

    def token_text(self, text: str, starts: npt.NDArray[np.intp], i: int, astral: bool) -> str:
        """Text of token ``i`` (``starts`` count UTF-16 units, as :meth:`featurize` does)."""
        if astral:
            toks = self.token_texts(text)  # astral characters shift positions: slow path
            return toks[i] if i < len(toks) else ""
        s = int(starts[i])
        ch = text[s]
        if ord(ch) > 0xFFFF or not self._word[ord(ch)]:
            return ch
        end = s + 1
        while end < len(text) and ord(text[end]) <= 0xFFFF and self._word[ord(text[end])]:
            end += 1
        return text[s:end]

    def token_texts(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings, in the order :meth:`featurize` sees them."""
        out: list[str] = []
        run = ""
        for ch in truncate(text):
            code = ord(ch)
            cls_word = code < 0x10000 and bool(self._word[code])
            cls_real = code >= 0x10000 or bool(self._real[code])
            if cls_word:
                run += ch
                continue
            if run:
                out.append(run)
                run = ""
            if cls_real:
                out.append(ch)
                if code >= 0x10000:
                    out.append("")  # two UTF-16 units, two tokens
        if run:
            out.append(run)
        return out

    def phrase_key(self, phrase: str) -> tuple[int, int]:
        """The n-gram key of a one- to three-token phrase, as :meth:`ngrams` computes it, and
        its bucket."""
        ng = self.ngrams(phrase)
        if not 1 <= len(ng.starts) <= 3:
            raise ValueError(f"cue {phrase!r} must be 1 to 3 tokens, got {len(ng.starts)}")
        # the last key is the n-gram of all the phrase's tokens
        return int(ng.keys[-1]), int(ng.body[-1])

    def _build_cues(self) -> tuple[Array, npt.NDArray[np.uint8]]:
        """Cue keys laid out by bucket, and each cue's concept: ``cue_key[idx] == key`` tells a
        cue from a collision.

        Two cues in one bucket cannot both be kept: the later one is dropped (and listed in
        ``dropped_cues``, which a test keeps empty).
        """
        size = self.n_hashed
        key_table = np.zeros(size, dtype=U32)
        key_table[0] = 1  # an empty bucket holds a key that cannot land in it
        id_table = np.zeros(size, dtype=np.uint8)
        used: dict[int, int] = {}  # bucket -> key
        for cid, phrases in enumerate(CONCEPTS.values()):
            for phrase in phrases:
                key, b = self.phrase_key(phrase)
                if b in used:
                    if used[b] != key:
                        self.dropped_cues.append(phrase)
                    continue  # a repeated phrase: the first concept keeps it
                used[b] = key
                key_table[b] = key
                id_table[b] = cid
        return key_table, id_table

    def cue_matches(self, f: Features) -> list[tuple[str, str]]:
        """(concept, matched text) for every cue in the text (slow path, for explanations)."""
        names = list(CONCEPTS)
        t = f.n
        out = []
        body = f.idx[:f.m]
        hits = self.cue_hits(f.keys, body)
        for j, c in zip(hits.tolist(), self.cue_ids(body, hits), strict=True):
            ngram, i = (1, j) if j < t else ((2, j - t) if j < 2 * t - 1 else (3, j - 2 * t + 1))
            out.append((names[c], f.span(i, ngram)))
        return out
