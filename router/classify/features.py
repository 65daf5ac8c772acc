"""Text extraction and hashed features for the task classifier.

Everything here is vectorised with numpy so that a ~500-token prompt costs tens of
microseconds, not milliseconds:

1. The text is mapped code point by code point through two lookup tables: a canonical form
   (lower case, full-width ASCII folded to half-width, Chinese punctuation folded to ASCII,
   every digit mapped to 0) and a class (separator, word character, CJK character, symbol).
2. Tokens are runs of word characters, or single CJK characters, or single symbols. So English
   is split into words and Chinese into characters, and token bigrams/trigrams over Chinese are
   character bigrams/trigrams: no segmenter is needed.
3. Each token is hashed by a polynomial rolling hash computed from one prefix sum over the whole
   text (the hash of a span is ``(S[end] - S[start]) * P**-start``, all arithmetic mod 2**32).
   Digits have code 0, so every number hashes to the same "number" token, whatever its value.
4. Token unigrams, bigrams and trigrams, and unigrams/bigrams of the first and last tokens (where
   the instruction usually is, in a long pasted document), are hashed into ``2**bits`` buckets.
5. Explicit, language-neutral signals (writing verbs, translate/summarise/rewrite cues, maths and
   logic cues, code syntax, LaTeX...) are counted by looking the same token hashes up in a small
   exact-match table built from the lexicon in :mod:`router.classify.lexicon`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router.classify.lexicon import CONCEPTS, STRUCTURAL

U32 = np.uint32
Array = npt.NDArray[np.uint32]

# Hash constants (odd, 32-bit). Changing any of them changes the model: bump FEATURE_VERSION.
FEATURE_VERSION = 1
_P = 0x01000193  # rolling-hash base (FNV prime)
_Q = 0x9E3779B1  # combines tokens into n-grams
_MIX = 0x85EBCA6B  # multiplicative hashing into buckets
_SALT = {"uni": 0x1B873593, "bi": 0x2C1B3C6D, "tri": 0x297A2D39, "head": 0x3C6EF372,
         "headbi": 0x5851F42D, "cue": 0x68E31DA4}

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


def _build_tables() -> tuple[Array, npt.NDArray[np.uint8]]:
    """Canonical code and token class for every code point of the BMP (astral -> symbol)."""
    canon = np.zeros(0x10000, dtype=U32)
    cls = np.zeros(0x10000, dtype=np.uint8)
    for o in range(0x10000):
        ch = chr(o)
        if 0xD800 <= o <= 0xDFFF:
            canon[o], cls[o] = 0xFFFD, SYM
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
            canon[o], cls[o] = 32, SEP
        else:
            canon[o], cls[o] = ord(ch), SYM
    canon[0xFFFF], cls[0xFFFF] = 0xFFFF, SYM  # astral characters (emoji...) are clipped here
    return canon, cls


@dataclass(frozen=True)
class Tokens:
    """Token spans and hashes of one text (positions index the featurised text)."""

    text: str
    starts: npt.NDArray[np.intp]
    ends: npt.NDArray[np.intp]
    hashes: Array


@dataclass(frozen=True)
class Features:
    """Hashed bucket indices per family, with the scale of each family, plus explicit values."""

    uni: npt.NDArray[np.intp]
    bi: npt.NDArray[np.intp]
    tri: npt.NDArray[np.intp]
    head: npt.NDArray[np.intp]
    scales: tuple[float, float, float, float]
    explicit: npt.NDArray[np.float32]
    tokens: Tokens


def truncate(text: str, max_chars: int = MAX_CHARS, head: int = HEAD_CHARS) -> str:
    """Keep the head and the tail of a long text: instructions sit at one end or the other."""
    if len(text) <= max_chars:
        return text
    return text[:head] + "\n" + text[len(text) - (max_chars - head - 1):]


class Featurizer:
    """Turns text into hashed feature indices. Build once; ``featurize`` is thread-safe."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.n_hashed = 1 << bits
        self._shift = U32(32 - bits)
        self._canon, self._cls = _build_tables()
        n = MAX_CHARS + 2
        self._pow = np.cumprod(np.full(n, _P, dtype=U32), dtype=U32)
        self._pow = np.concatenate([np.ones(1, dtype=U32), self._pow[:-1]])
        inv = pow(_P, -1, 1 << 32)
        self._ipow = np.cumprod(np.full(n, inv, dtype=U32), dtype=U32)
        self._ipow = np.concatenate([np.ones(1, dtype=U32), self._ipow[:-1]])
        self._cue_bits = 16
        self._cue_id = np.zeros(1 << self._cue_bits, dtype=np.intp)
        self._cue_hash = np.zeros(1 << self._cue_bits, dtype=U32)
        self.concepts: tuple[str, ...] = tuple(CONCEPTS) + STRUCTURAL
        self._build_cues()

    # -- tokens ------------------------------------------------------------------------------

    def tokens(self, text: str) -> Tokens:
        text = truncate(text)
        cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=U32)
        cp = np.minimum(cp, U32(0xFFFF))
        canon = self._canon[cp]
        cls = self._cls[cp]
        n = len(cls)
        prefix = np.zeros(n + 1, dtype=U32)
        np.cumsum(canon * self._pow[:n], dtype=U32, out=prefix[1:])
        word = cls == WORD
        cont = np.zeros(n + 1, dtype=bool)  # cont[i]: char i continues the word at i - 1
        if n > 1:
            np.logical_and(word[1:], word[:-1], out=cont[1:n])
        real = cls != SEP
        starts = np.flatnonzero(real & ~cont[:n])
        ends = np.flatnonzero(real & ~cont[1:]) + 1
        hashes = (prefix[ends] - prefix[starts]) * self._ipow[starts]
        return Tokens(text, starts, ends, hashes)

    # -- hashing ---------------------------------------------------------------------------

    def _bucket(self, h: Array, salt: str) -> npt.NDArray[np.intp]:
        return (((h + U32(_SALT[salt])) * U32(_MIX)) >> self._shift).astype(np.intp)

    @staticmethod
    def _bigrams(h: Array) -> Array:
        return h[:-1] * U32(_Q) + h[1:]  # type: ignore[no-any-return]

    @staticmethod
    def _trigrams(h: Array) -> Array:
        return (h[:-2] * U32(_Q) + h[1:-1]) * U32(_Q) + h[2:]  # type: ignore[no-any-return]

    def featurize(self, text: str) -> Features:
        tok = self.tokens(text)
        h = tok.hashes
        n = len(h)
        bi = self._bigrams(h)
        tri = self._trigrams(h)
        ends = np.concatenate([h[:HEAD_TOKENS], h[-HEAD_TOKENS:]]) if n > 2 * HEAD_TOKENS else h
        head = np.concatenate([self._bucket(ends, "head"),
                               self._bucket(self._bigrams(ends), "headbi")])
        scales = (
            1.0 / np.sqrt(max(n, 1)), 1.0 / np.sqrt(max(n - 1, 1)),
            1.0 / np.sqrt(max(n - 2, 1)), 1.0 / np.sqrt(max(len(head), 1)),
        )
        explicit = self._explicit(tok, h, bi, tri)
        return Features(self._bucket(h, "uni"), self._bucket(bi, "bi"), self._bucket(tri, "tri"),
                        head, scales, explicit, tok)

    # -- explicit signals ----------------------------------------------------------------------

    def _cue_key(self, phrase: str) -> int:
        h = self.tokens(phrase).hashes
        if len(h) == 1:
            key = h
        elif len(h) == 2:
            key = self._bigrams(h)
        elif len(h) == 3:
            key = self._trigrams(h)
        else:
            raise ValueError(f"cue {phrase!r} must be 1 to 3 tokens, got {len(h)}")
        return int(key[0]) ^ (len(h) * 0x10001)

    def _build_cues(self) -> None:
        mask = (1 << self._cue_bits) - 1
        for cid, (_concept, phrases) in enumerate(CONCEPTS.items(), start=1):
            for phrase in phrases:
                key = self._cue_key(phrase)
                slot = (((key * _MIX) & 0xFFFFFFFF) >> 8) & mask
                while self._cue_id[slot] and int(self._cue_hash[slot]) != key:
                    slot = (slot + 1) & mask  # linear probing; lookups check the next slot too
                if self._cue_id[slot] and self._cue_id[slot] != cid:
                    continue  # the same phrase under two concepts: the first one wins
                self._cue_id[slot] = cid
                self._cue_hash[slot] = key

    def _lookup(self, keys: Array, ngram: int) -> npt.NDArray[np.intp]:
        keys = keys ^ U32(ngram * 0x10001)
        mask = U32((1 << self._cue_bits) - 1)
        slot = ((keys * U32(_MIX)) >> U32(8)) & mask
        ids = np.where(self._cue_hash[slot] == keys, self._cue_id[slot], 0)
        slot2 = (slot + U32(1)) & mask  # one probe step covers the rare collisions
        ids2 = np.where(self._cue_hash[slot2] == keys, self._cue_id[slot2], 0)
        return np.maximum(ids, ids2)

    def _explicit(self, tok: Tokens, h: Array, bi: Array, tri: Array) -> npt.NDArray[np.float32]:
        k = len(CONCEPTS) + 1
        ids = np.concatenate([self._lookup(h, 1), self._lookup(bi, 2), self._lookup(tri, 3)])
        counts = np.bincount(ids, minlength=k)[1:k].astype(np.float32)
        text = tok.text
        n_tok = max(len(h), 1)
        structural = np.array([
            1.0 if "```" in text else 0.0,
            1.0 if ("\\frac" in text or "$" in text or "\\(" in text or "^{" in text) else 0.0,
            min(1.0, 4.0 * float(np.count_nonzero(h == 0)) / n_tok),  # number density
            min(1.0, len(text) / 3000.0),  # long document
        ], dtype=np.float32)
        return np.concatenate([np.log1p(counts), structural])

    def cue_matches(self, tok: Tokens) -> list[tuple[str, str]]:
        """(concept, matched text) for every cue in the text: slow path, for explanations."""
        out: list[tuple[str, str]] = []
        h = tok.hashes
        names = list(CONCEPTS)
        for ngram, keys in ((1, h), (2, self._bigrams(h)), (3, self._trigrams(h))):
            if len(keys) == 0:
                continue
            ids = self._lookup(keys, ngram)
            for i in np.flatnonzero(ids):
                span = tok.text[int(tok.starts[i]):int(tok.ends[i + ngram - 1])]
                out.append((names[int(ids[i]) - 1], span))
        return out
