"""The classifier: a linear model over hashed n-grams and explicit signals, Platt-calibrated.

Weights live in ``weights.bin`` (little-endian float32: the hashed buckets, then one weight per
explicit signal) and ``model.json`` (bias, calibration, hashing parameters, training figures).
Both are rebuilt by ``python -m router.classify.train``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from router.classify.features import (
    FEATURE_VERSION,
    MAX_CHARS,
    Features,
    Featurizer,
    Material,
    truncate,
)
from router.classify.lexicon import FOLLOW_UPS, STRUCTURAL
from router.classify.material import split
from router.classify.messages import extract
from router.classify.overrides import TASKS, Task  # noqa: F401 - re-exported

MODEL_DIR = Path(__file__).resolve().parent
MODEL_JSON = MODEL_DIR / "model.json"
WEIGHTS_BIN = MODEL_DIR / "weights.bin"

#: How much the context (system prompt, previous user turn) counts against the last user turn;
#: more when the last turn is too short to say much by itself ("continue", "why?", "继续").
CONTEXT_WEIGHT = 0.3
CONTEXT_WEIGHT_SHORT = 0.7
SHORT_TOKENS = 6
#: Contexts whose score is kept (each at most ~1,200 characters: ~0.6 MB at most).
CONTEXT_CACHE = 256


_TRIM = " \t\r\n.,!?;:~…。，！？；：、\"'“”‘’()（）"


def is_follow_up(text: str) -> bool:
    """Whether a last turn asks for nothing by itself ("ok", "continue", "why?", "继续")."""
    if len(text) > 24:
        return False
    core = " ".join(text.lower().split()).strip(_TRIM)
    return core == "" or core in FOLLOW_UPS  # ("?" or "..." alone ask for nothing either)


@dataclass(frozen=True)
class Classification:
    """What a request needs. ``confidence`` is the calibrated probability of ``task``."""

    task: Task
    confidence: float
    signals: tuple[str, ...] = ()


class Margin(NamedTuple):  # a tuple: built on every request, cheaper than a dataclass
    """Raw score of one text (positive means reasoning), with what contributed to it."""

    value: float
    features: Features


class LinearModel:
    """Weights and calibration; :meth:`score` is the request path, :meth:`margin` the same
    score with the features behind it (for explanations)."""

    def __init__(self, weights: npt.NDArray[np.float32], bias: float, calib: tuple[float, float],
                 featurizer: Featurizer, meta: dict[str, Any] | None = None) -> None:
        self.featurizer = featurizer
        n = featurizer.n_hashed
        if sys.byteorder != "little":  # pragma: no cover - the packed rows assume it
            raise RuntimeError("the classifier's packed weight table needs a little-endian CPU")
        # One 8-byte row per bucket: the cue key that lives there (low half) and the weight's
        # float32 bits (high half); see score(). The weights and the featurizer's cue keys are
        # views of it, so the rows cost no memory over separate tables.
        self._rows = np.empty(n, dtype=np.uint64)
        halves = self._rows.view(np.uint32)
        halves[0::2] = featurizer.cue_keys()
        halves[1::2] = np.asarray(weights[:n], dtype="<f4").view(np.uint32)
        self._rows.flags.writeable = False
        halves = self._rows.view(np.uint32)  # read-only views from here on
        featurizer.share_cue_keys(halves[0::2])
        self.hashed: npt.NDArray[np.float32] = halves[1::2].view(np.float32)
        self.explicit = np.array(weights[n:], dtype=np.float32)
        if len(self.explicit) != len(featurizer.concepts):
            raise ValueError("weights do not match the explicit signals of this version")
        self.explicit.flags.writeable = False
        self.bias = float(bias)
        self.calib = (float(calib[0]), float(calib[1]))
        self.meta = meta or {}
        self._explicit_w: list[float] = self.explicit.astype(np.float64).tolist()
        self._k2 = len(self._explicit_w) - len(STRUCTURAL)  # concept counts, then structural

    def margin(self, text: str) -> Margin:
        """Raw score of ``text``, with its features (for explanations).

        The value is bit-identical to :meth:`score`'s: the weights are gathered and summed
        the same way (float32 sums of the same arrays, added in the same order).
        """
        ft = self.featurizer.featurize(text)
        z = self._explicit_score(ft.counts)
        m, mh = ft.m, ft.mh
        if m:  # (the same sums as score(), in the same order)
            g = self._rows.take(ft.idx[:m]).view(np.uint32)  # as score() gathers them
            head = self.hashed[ft.idx[m:mh]]
            z = (z + float(g[1::2].view(np.float32).sum()) / math.sqrt(m)
                 + float(head.sum()) / math.sqrt(len(head)))
        if len(ft.idx) > mh:
            mat = self.hashed[ft.idx[mh:]]
            z += float(mat.sum()) / math.sqrt(len(mat))
        return Margin(z, ft)

    def score(self, text: str) -> tuple[float, int]:
        """Raw score of ``text`` and its number of tokens: :meth:`margin` without the features.

        The request path. One gather from ``_rows`` reads each n-gram's weight and tells
        whether it is a cue: one cache line per n-gram, where separate weight and cue tables
        would cost a second pass of cache misses over another megabyte.
        """
        f = self.featurizer
        if len(text) > MAX_CHARS:
            text = truncate(text)
        full = len(text)
        text, material = split(text)
        text, starts, keys, body, numbers = f.ngrams(text)
        t = len(starts)
        zb = zh = zm = 0.0  # summed as margin() sums them, so that both agree to the bit
        if t:
            g = self._rows.take(body).view(np.uint32)  # cue key, weight, cue key, weight...
            hits = (g[0::2] == keys).nonzero()[0]
            ids = f.cue_ids(body, hits)
            head = self.hashed[f.head_buckets(body, t)]
            zb = float(g[1::2].view(np.float32).sum()) / math.sqrt(len(keys))
            zh = float(head.sum()) / math.sqrt(len(head))
        else:
            hits, ids = body, []
        mat = None
        n = t
        if material:
            _, mstarts, mkeys, mbody, mnumbers = f.ngrams(material)
            if len(mstarts):
                mat = Material(len(mstarts), mnumbers,
                               f.cue_ids(mbody, f.cue_hits(mkeys, mbody)), len(material))
                # (fancy indexing, not take: ``hashed`` is a strided view, which take copies)
                w = self.hashed[np.bitwise_xor(mbody, f.material_xor)]
                zm = float(w.sum()) / math.sqrt(len(w))
                n += len(mstarts)
        if not n:
            return self.bias, 0
        z = self._explicit_score(f.counts(full, t, numbers, hits, ids, mat))
        if t:
            z = z + zb + zh
        if mat is not None:
            z += zm
        return z, n

    def _explicit_score(self, c: list[float]) -> float:
        """Bias plus the explicit signals' part of the score, in plain Python (float64; training
        sees them as float32, a difference far below the 4 decimals of a confidence)."""
        w = self._explicit_w
        k2 = self._k2
        z = self.bias
        for i in range(k2, len(w)):  # the structural signals, linear
            z += w[i] * c[i]
        for i in range(k2):
            if c[i]:
                z += w[i] * math.log1p(c[i])
        return z

    def probability(self, z: float) -> float:
        """Calibrated probability that a text with margin ``z`` needs reasoning."""
        a, b = self.calib
        t = a * z + b
        if t >= 0:
            return 1.0 / (1.0 + math.exp(-t))
        e = math.exp(t)
        return e / (1.0 + e)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, meta: dict[str, Any], directory: Path = MODEL_DIR) -> None:
        blob = np.concatenate([self.hashed, self.explicit]).astype("<f4").tobytes()
        meta = dict(meta)
        meta.update(
            feature_version=FEATURE_VERSION, bits=self.featurizer.bits, bias=self.bias,
            calibration={"a": self.calib[0], "b": self.calib[1]},
            explicit_signals=list(self.featurizer.concepts),
            explicit_weights={
                k: round(float(v), 4)
                for k, v in zip(self.featurizer.concepts, self.explicit, strict=True)
            },
            weights_sha256=hashlib.sha256(blob).hexdigest(),
        )
        (directory / WEIGHTS_BIN.name).write_bytes(blob)
        (directory / MODEL_JSON.name).write_text(
            json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path = MODEL_DIR) -> LinearModel:
        """Read the shipped model from disk (no network); checks version and checksum."""
        meta = json.loads((directory / MODEL_JSON.name).read_text(encoding="utf-8"))
        blob = (directory / WEIGHTS_BIN.name).read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["weights_sha256"]:
            raise ValueError(f"{directory / WEIGHTS_BIN.name}: checksum does not match model.json")
        if meta["feature_version"] != FEATURE_VERSION:
            raise ValueError("model.json was trained for another feature version: retrain")
        weights = np.frombuffer(blob, dtype="<f4")
        feat = Featurizer(int(meta["bits"]))
        cal = meta["calibration"]
        return cls(weights, meta["bias"], (cal["a"], cal["b"]), feat, meta)


class Classifier:
    """Loads the model once (lazily, thread-safe) and classifies chat requests."""

    def __init__(self, directory: Path = MODEL_DIR, context_cache: int = CONTEXT_CACHE) -> None:
        self.directory = directory
        self._model: LinearModel | None = None
        self._lock = threading.Lock()
        # The context (system prompt head, previous turn tail) of most requests repeats: an
        # application sends the same system prompt with every request. Its score is cached by
        # its text (bounded; C-implemented and thread-safe); the last user turn never is.
        self._context_score = functools.lru_cache(maxsize=context_cache)(self._score_context)

    def _score_context(self, text: str) -> float:
        return self.load().score(text)[0]

    def context_cache_info(self) -> Any:
        """Hits, misses and size of the context cache (``functools`` cache info)."""
        return self._context_score.cache_info()

    def load(self) -> LinearModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = LinearModel.load(self.directory)
        return self._model

    def classify(self, messages: Any, explain: bool = True) -> Classification:
        """Classify OpenAI chat ``messages`` (a list of dicts; odd shapes are tolerated).

        ``explain=False`` (the request path) skips the signals and the features behind them.
        """
        model = self._model or self.load()
        ex = extract(messages)
        notes = ex.notes
        has_context = bool(ex.context.strip())
        if not has_context and not ex.main.strip():
            return Classification("expression", 0.5, ("no text to classify", *notes))
        if has_context and is_follow_up(ex.main):
            # "ok", "continue", "why?": the task is the one of the turn before
            p = model.probability(self._context_score(ex.context))
            task0: Task = "reasoning" if p >= 0.5 else "expression"
            conf0 = round(p if task0 == "reasoning" else 1.0 - p, 4)
            why = ("short follow-up: the task of the earlier turns", *notes)
            return Classification(task0, conf0, why if explain else notes)
        main: Margin | None = None
        if explain:
            main = model.margin(ex.main)
            z, n = main.value, main.features.n
        else:
            z, n = model.score(ex.main)
        if has_context:  # margin and score agree to the bit: one cache serves both paths
            cz = self._context_score(ex.context)
            z += (CONTEXT_WEIGHT_SHORT if n < SHORT_TOKENS else CONTEXT_WEIGHT) * (cz - model.bias)
        p = model.probability(z)
        task: Task = "reasoning" if p >= 0.5 else "expression"
        confidence = round(p if task == "reasoning" else 1.0 - p, 4)
        if main is None:
            return Classification(task, confidence, notes)
        signals = self.signals(model, main, task)
        if has_context:
            signals += ("context: system prompt / earlier turns",)
        return Classification(task, confidence, signals + notes)

    @staticmethod
    def signals(model: LinearModel, m: Margin, task: Task, k: int = 4) -> tuple[str, ...]:
        """The strongest contributions towards ``task``: explicit signals first, then tokens."""
        sign = 1.0 if task == "reasoning" else -1.0
        ft = m.features
        names = model.featurizer.concepts
        contrib = (model.explicit * ft.explicit * np.float32(sign)).tolist()
        order = sorted(range(len(contrib)), key=contrib.__getitem__, reverse=True)[:k]
        out = [f"{names[i]} ({contrib[i]:+.2f})" for i in order
               if contrib[i] > 0.05 and (names[i] != "long document" or len(ft.text) > 900)]
        t = ft.n
        if not t:
            return tuple(out)
        per = model.hashed[ft.idx[:t]] * np.float32(ft.body_scale * sign)
        cand = np.argpartition(-per, 3 * k)[:3 * k] if t > 3 * k else np.arange(t)
        cand = cand[np.argsort(-per[cand])]
        seen: set[int] = set()
        for i, v, key in zip(cand.tolist(), per[cand].tolist(), ft.keys[cand].tolist(),
                             strict=True):
            if v <= 0.02 or len(seen) >= k:
                break
            if key not in seen:  # the same token elsewhere in the text
                seen.add(key)
                out.append(f'"{ft.span(i).lower()}" ({v:+.2f})')
        return tuple(out)


DEFAULT = Classifier()
