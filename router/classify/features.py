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
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import numpy.typing as npt

from router.classify.lexicon import CONCEPTS, STRUCTURAL

U32 = np.uint32
Array = npt.NDArray[np.uint32]

# Hash constants (odd, 32-bit). Changing any of them changes the model: bump FEATURE_VERSION.
FEATURE_VERSION = 4
_P = 0x01000193  # rolling-hash base (FNV prime)
_Q = 0x9E3779B1  # combines tokens into n-grams
_MIX = 0x85EBCA6B  # multiplicative hashing into buckets
_OFFSET = 0x2545F491  # added to every token hash, so all-digit tokens are not 0
_HEAD_XOR = 0x5BD1E995  # permutes the buckets of the "instruction" family (masked)

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


class Features:
    """One text's features.

    ``keys`` are the 32-bit n-gram keys: the ``n`` token unigrams, then ``n - 1`` bigrams, then
    ``n - 2`` trigrams. ``idx`` holds their ``m = len(keys)`` buckets, then the buckets of the
    "instruction" family (the first and last unigrams and bigrams again, in permuted buckets).
    ``explicit`` holds the values of the explicit signals (see :attr:`Featurizer.concepts`).
    """

    __slots__ = ("_astral", "explicit", "featurizer", "idx", "keys", "m", "n", "starts", "text")

    def __init__(self, featurizer: Featurizer, text: str, starts: npt.NDArray[np.intp],
                 keys: Array, idx: npt.NDArray[np.intp], explicit: npt.NDArray[np.float32]
                 ) -> None:
        self.featurizer = featurizer
        self.text = text
        self.starts = starts
        self.n = len(starts)
        self.keys = keys
        self.m = len(keys)
        self.idx = idx
        self.explicit = explicit
        self._astral: bool | None = None

    @property
    def body_scale(self) -> float:
        """n-gram counts are scaled by 1/sqrt(their number): long texts do not score bigger."""
        return 1 / math.sqrt(max(self.m, 1))

    @property
    def head_scale(self) -> float:
        return 1 / math.sqrt(max(len(self.idx) - self.m, 1))

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
        self._head_xor_i = np.intp(_HEAD_XOR & (self.n_hashed - 1))
        self._canon, self._word, self._real = _build_tables()
        self._canon8 = bytes(int(c) if c < 256 else 0 for c in self._canon[:128]) + bytes(128)
        self._word8 = bytes(self._word[:128].astype(np.uint8)) + bytes(128)
        self._real8 = bytes(self._real[:128].astype(np.uint8)) + bytes(128)
        n = 2 * MAX_CHARS + 2  # UTF-16 units: astral characters take two
        inv = pow(_P, -1, 1 << 32)
        self._pow = np.cumprod(np.full(n, _P, dtype=U32), dtype=U32) * U32(inv)
        self._ipow = np.cumprod(np.full(n, inv, dtype=U32), dtype=U32) * U32(_P)
        self.concepts: tuple[str, ...] = (
            tuple(CONCEPTS) + tuple(f"{c} (at either end)" for c in CONCEPTS) + STRUCTURAL)
        self._cue_key = np.ones(self.n_hashed, dtype=U32)  # no cues while the table is built
        self._cue_id = np.zeros(self.n_hashed, dtype=np.uint8)
        self.dropped_cues: list[str] = []
        self._build_cues()

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

    def featurize(self, text: str) -> Features:
        text = truncate(text)
        canon, first = self._chars(text)
        n = len(canon)
        starts = first.nonzero()[0]
        t = len(starts)
        if t == 0:
            return Features(self, text, starts, np.zeros(0, dtype=U32), np.zeros(0, np.intp),
                            np.zeros(len(self.concepts), dtype=np.float32))
        h = np.add.reduceat(canon * self._pow[:n], starts, dtype=U32)
        h *= self._ipow[starts]
        h += U32(_OFFSET)
        m = max(3 * t - 3, t)
        keys = np.empty(m, dtype=U32)
        keys[:t] = h
        bi = keys[t:2 * t - 1]
        np.multiply(h[:-1], U32(_Q), out=bi)
        bi += h[1:]
        tri = keys[2 * t - 1:]
        np.multiply(bi[:-1], U32(_Q), out=tri)
        tri += h[2:]
        e = HEAD_TOKENS
        b = 2 * t - 1  # end of the bigrams
        body = np.empty(m, dtype=np.intp)  # native indices: faster gathers
        np.right_shift(keys * U32(_MIX), self._shift, out=body, casting="unsafe")
        if t > 2 * e:
            idx = np.concatenate((body, body[:e], body[t - e:t + e], body[b - e:b]))
        else:
            idx = np.concatenate((body, body[:b]))
        idx[m:] ^= self._head_xor_i
        return Features(self, text, starts, keys, idx, self._explicit(text, keys, body, t))

    def _explicit(self, text: str, keys: Array, body: npt.NDArray[np.intp], t: int
                  ) -> npt.NDArray[np.float32]:
        """log(1 + count) of each concept's cues, in the whole text and at either end of it,
        then the structural signals."""
        k = len(CONCEPTS)
        out = np.empty(2 * k + 2, dtype=np.float32)
        hits = (self._cue_key[body] == keys).nonzero()[0]
        nh = len(hits)
        e = HEAD_TOKENS
        if nh and (nh > 48 or t <= 2 * e):
            ids = self._cue_id[body[hits]]
            if t > 2 * e:  # hits among the first or last e n-grams of their family count twice
                bounds = np.array((0, e, t - e, t + e, 2 * t - 1 - e, 2 * t - 1 + e,
                                   3 * t - 3 - e))
                near = bounds.searchsorted(hits, side="right") & 1  # odd: near an end
                c = np.bincount(np.add(ids, near * k), minlength=2 * k)
                out[:k] = c[:k] + c[k:]
                out[k:2 * k] = c[k:]
            else:
                c = np.bincount(ids, minlength=k)
                out[:k] = c
                out[k:2 * k] = c
            np.log1p(out[:2 * k], out=out[:2 * k])
        elif nh:  # few hits: plain Python is cheaper than a dozen numpy calls
            counts = [0.0] * (2 * k)
            b = 2 * t - 1
            for j, c in zip(hits.tolist(), self._cue_id[body[hits]].tolist(), strict=True):
                counts[c] += 1.0
                if j < e or t - e <= j < t + e or b - e <= j < b + e or j >= 3 * t - 3 - e:
                    counts[k + c] += 1.0
            out[:2 * k] = counts
            np.log1p(out[:2 * k], out=out[:2 * k])
        else:
            out[:2 * k] = 0.0
        out[2 * k] = min(1.0, 4.0 * int(np.count_nonzero(keys[:t] == _OFFSET)) / t)
        out[2 * k + 1] = min(1.0, len(text) / 3000)
        return out

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

    def phrase_key(self, phrase: str) -> int:
        """The n-gram key of a one- to three-token phrase, as :meth:`featurize` computes it."""
        f = self.featurize(phrase)
        if not 1 <= f.n <= 3:
            raise ValueError(f"cue {phrase!r} must be 1 to 3 tokens, got {f.n}")
        return int(f.keys[-1])  # the last key is the n-gram of all the phrase's tokens

    def _build_cues(self) -> None:
        """Cue keys laid out by bucket: ``cue_key[idx] == key`` tells a cue from a collision.

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
                key = self.phrase_key(phrase)
                b = ((key * _MIX) & 0xFFFFFFFF) >> (32 - self.bits)
                if b in used:
                    if used[b] != key:
                        self.dropped_cues.append(phrase)
                    continue  # a repeated phrase: the first concept keeps it
                used[b] = key
                key_table[b] = key
                id_table[b] = cid
        self._cue_key, self._cue_id = key_table, id_table

    def cue_matches(self, f: Features) -> list[tuple[str, str]]:
        """(concept, matched text) for every cue in the text (slow path, for explanations)."""
        names = list(CONCEPTS)
        t = f.n
        out = []
        body = f.idx[:f.m]
        for j in np.flatnonzero(self._cue_key[body] == f.keys):
            ngram, i = (1, j) if j < t else ((2, j - t) if j < 2 * t - 1 else (3, j - 2 * t + 1))
            out.append((names[int(self._cue_id[body[j]])], f.span(int(i), ngram)))
        return out
