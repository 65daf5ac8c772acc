"""The difficulty estimate: how likely a typical model is to get a prompt wrong.

A linear model over the named signals (and, in a team's refit, hashed n-grams) gives the
prompt's difficulty ``z`` in log-odds, centred on the prompts it was trained on: 0 is a typical
prompt, +1 one whose odds of being answered wrong are e times higher. It was fitted as the
difficulty of a Rasch model (item response theory): the chance that model ``m`` gets prompt
``x`` wrong is ``sigmoid(c_m + z(x))``, with one ability ``c_m`` per model and dataset. So
``z`` says nothing about any one model, and transfers to models it never saw; the policy's
capabilities say who can do hard prompts (docs/policy.md, "Difficulty").

``value`` is ``sigmoid(z)``: the chance a model that gets half of the typical prompts right
gets this one wrong; ``band`` is easy (< 0.35), medium, or hard (>= 0.65).

Weights live in one JSON file (``router/difficulty/model.json`` ships; ``router eval calibrate
--difficulty-out`` writes a team's own), loaded once and checked against the feature version.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classify.features import Featurizer
from router.difficulty.features import KINDS, NAMES, SIGNAL_BITS, DifficultyFeaturizer

MODEL_DIR = Path(__file__).resolve().parent
MODEL_JSON = MODEL_DIR / "model.json"
#: Bumped whenever the signals change: a model file of another version is refused.
FEATURE_VERSION = 3
BANDS: tuple[tuple[float, str], ...] = ((0.35, "easy"), (0.65, "medium"), (1.01, "hard"))


def _group(name: str) -> tuple[str, str | None] | None:
    """(base signal, kind or None) of a signal name; None for a kind indicator."""
    if name.startswith("kind: "):
        return None
    for kd in KINDS:
        if name.endswith(f" ({kd})"):
            return name[: -len(kd) - 3], kd
    return name, None


_GROUP = [_group(n) for n in NAMES]


def band_of(value: float) -> str:
    for upper, name in BANDS:
        if value < upper:
            return name
    return BANDS[-1][1]


@dataclass(frozen=True, slots=True)
class Difficulty:
    """A prompt's estimated difficulty (see the module docstring)."""

    #: Log-odds of failure relative to a typical prompt (0: typical).
    logit: float
    #: ``sigmoid(logit)``: 0-1.
    value: float
    band: str

    @classmethod
    def of(cls, z: float) -> Difficulty:
        v = 1.0 / (1.0 + math.exp(-z)) if z > -40 else 0.0
        return cls(z, v, band_of(v))


class DifficultyModel:
    """Weights over :data:`~router.difficulty.features.NAMES` (and optional hashed n-grams)."""

    def __init__(self, featurizer: DifficultyFeaturizer, signal_weights: list[float],
                 centre: float, hashed: npt.NDArray[np.float32] | None = None,
                 meta: dict[str, Any] | None = None,
                 means: list[float] | None = None) -> None:
        if len(signal_weights) != len(NAMES):
            raise ValueError(f"{len(signal_weights)} signal weights for {len(NAMES)} signals")
        if hashed is not None and len(hashed) != featurizer.n_hashed:
            raise ValueError("hashed weights do not match the featurizer's bits")
        self.featurizer = featurizer
        self.weights = [float(w) for w in signal_weights]
        self.centre = float(centre)
        self.hashed = hashed
        self.meta = meta or {}
        #: Each signal's mean over the training prompts: explanations are relative to it.
        self.means = [float(m) for m in means] if means is not None else [0.0] * len(NAMES)
        self._nonzero = [(i, w) for i, w in enumerate(self.weights) if w]

    def logit(self, text: str) -> float:
        """The difficulty ``z`` of ``text``."""
        return self._logit(self.featurizer.extract(text))

    def logit_parsed(self, parsed: Any) -> float:
        """The request path: the difficulty of a text the classifier already tokenised
        (:class:`router.classify.model.Parsed`)."""
        return self._logit(self.featurizer.extract_parsed(
            parsed.instruction, parsed.material, parsed.text, self.hashed is not None))

    def _logit(self, ex: Any) -> float:
        s = ex.signals
        z = -self.centre
        for i, w in self._nonzero:
            v = s[i]
            if v:
                z += w * v
        if self.hashed is not None and len(ex.buckets):
            z += float(self.hashed.take(ex.buckets).sum()) / math.sqrt(len(ex.buckets))
        return z

    def estimate(self, text: str) -> Difficulty:
        return Difficulty.of(self.logit(text))

    def estimate_parsed(self, parsed: Any) -> Difficulty:
        return Difficulty.of(self.logit_parsed(parsed))

    def contributions(self, text: str, k: int = 4, exact: bool = False,
                      ) -> list[tuple[str, float]]:
        """The signals that moved ``text``'s difficulty most away from a typical prompt's, with
        their share of ``z`` (the explanation; the n-grams' part as "wording"). ``exact``: all
        of them, unrounded."""
        ex = self.featurizer.extract(text)
        mu = self.means
        kind = next(kd for kd in KINDS if ex.signals[NAMES.index(f"kind: {kd}")])
        groups: dict[str, float] = {}
        for i, w in self._nonzero:
            g = _GROUP[i]  # a kind term, or another kind's signal: what being this kind adds
            other = g is None or (g[1] is not None and g[1] != kind)
            label = f"kind: {kind}" if other or g is None else g[0]
            groups[label] = groups.get(label, 0.0) + w * (ex.signals[i] - mu[i])
        if self.hashed is not None and len(ex.buckets):
            rest = -self.centre + sum(w * mu[i] for i, w in self._nonzero)
            groups["wording"] = float(self.hashed.take(ex.buckets).sum()) / math.sqrt(
                len(ex.buckets)) + rest
        parts = sorted(groups.items(), key=lambda p: -abs(p[1]))
        if exact:  # every group, unrounded: they sum to the estimate
            return parts
        return [(n, round(v, 2)) for n, v in parts[:k] if abs(v) >= 0.05]

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object": "router.difficulty", "feature_version": FEATURE_VERSION,
            "bits": self.featurizer.bits, "centre": self.centre,
            "signals": {n: round(w, 6) for n, w in zip(NAMES, self.weights, strict=True)},
            "means": {n: round(m, 6) for n, m in zip(NAMES, self.means, strict=True)},
            "meta": self.meta,
        }
        if self.hashed is not None:
            blob = np.asarray(self.hashed, dtype="<f4").tobytes()
            out["hashed"] = base64.b64encode(blob).decode("ascii")
            out["hashed_sha256"] = hashlib.sha256(blob).hexdigest()
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False, sort_keys=True)
                        + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: Any, featurizer: DifficultyFeaturizer | None = None,
                  where: str = "<difficulty>") -> DifficultyModel:
        """Build from :meth:`to_json` output; ``ValueError`` naming ``where`` if it is not one."""
        if not isinstance(data, dict) or data.get("object") != "router.difficulty":
            raise ValueError(f"{where}: not a difficulty model (router eval calibrate "
                             "--difficulty-out writes one)")
        if data.get("feature_version") != FEATURE_VERSION:
            raise ValueError(f"{where}: made for feature version {data.get('feature_version')}, "
                             f"this gateway reads {FEATURE_VERSION}: refit it")
        signals = data.get("signals")
        if not isinstance(signals, dict) or set(signals) != set(NAMES):
            raise ValueError(f"{where}: its signals are not this gateway's: refit it")
        bits = int(data.get("bits", 16))
        if featurizer is None or featurizer.bits != bits:
            featurizer = difficulty_featurizer(bits)
        hashed = None
        if data.get("hashed"):
            blob = base64.b64decode(data["hashed"])
            if hashlib.sha256(blob).hexdigest() != data.get("hashed_sha256"):
                raise ValueError(f"{where}: hashed weights do not match their checksum")
            hashed = np.frombuffer(blob, dtype="<f4").copy()
            hashed.flags.writeable = False
        means = data.get("means")
        if not isinstance(means, dict) or set(means) != set(NAMES):
            raise ValueError(f"{where}: its signal means are missing: refit it")
        return cls(featurizer, [float(signals[n]) for n in NAMES], float(data["centre"]),
                   hashed, dict(data.get("meta") or {}), [float(means[n]) for n in NAMES])

    @classmethod
    def load(cls, path: Path = MODEL_JSON) -> DifficultyModel:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        return cls.from_json(data, where=str(path))


@functools.cache
def shared_featurizer() -> Featurizer:
    """The classifier's featuriser when its model loads (one set of tables in memory, and the
    request path shares its tokenisation), else one of our own."""
    try:
        from router.classify.model import DEFAULT

        return DEFAULT.load().featurizer
    except Exception:  # the classifier cannot load: tokenise with our own tables
        return Featurizer(16)


def difficulty_featurizer(bits: int = SIGNAL_BITS) -> DifficultyFeaturizer:
    """A :class:`DifficultyFeaturizer` over :func:`shared_featurizer`."""
    return DifficultyFeaturizer(shared_featurizer(), bits)


class Estimator:
    """Loads the shipped model once (lazily, thread-safe)."""

    def __init__(self, path: Path = MODEL_JSON) -> None:
        self.path = path
        self._model: DifficultyModel | None = None
        self._lock = threading.Lock()

    def load(self) -> DifficultyModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = DifficultyModel.load(self.path)
        return self._model


DEFAULT = Estimator()
