"""Rebuild the shipped difficulty estimate: ``python -m router.difficulty.train``.

Fits :func:`router.difficulty.fit.fit_difficulty` on the public outcome files (default: the
RouteLLM GSM8K and MMLU files and dcrouter's training split in ``../shared/data/outcomes``; never
dcrouter's test split, which is kept for checking) with the named signals only, and writes
``router/difficulty/model.json``. Same data in, same bytes out.

How well it routes is measured with ``router eval replay`` (docs/evaluation.md): leave one file
out (``--train-on``), or k-fold within a file (``--refit kfold``) for what a team reaches after
refitting on its own outcomes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router.difficulty.fit import OrdinalSet, TrainingSet, fit_difficulty
from router.difficulty.model import MODEL_JSON, difficulty_featurizer
from router.evaluate.outcomes import OutcomeRow, read_outcomes

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILES = ("routellm_gsm8k.jsonl", "routellm_mmlu.jsonl", "dcrouter_train.jsonl")


def default_outcomes_dir() -> Path:
    return REPO.parent / "shared" / "data" / "outcomes"


def training_set(name: str, rows: Sequence[OutcomeRow]) -> TrainingSet:
    """A dataset for fitting: the last user turn of each row and every model's scores (models
    a row does not score are left out of the set)."""
    models = [m for m in rows[0].scores if all(m in r.scores for r in rows)]
    return TrainingSet(name, [r.text for r in rows],
                       {m: np.array([r.scores[m] for r in rows]) for m in models})


def training_sets(rows: Sequence[OutcomeRow]) -> list[TrainingSet]:
    """One dataset per source file of ``rows`` (each its own models' abilities)."""
    by_file: dict[str, list[OutcomeRow]] = {}
    for r in rows:
        by_file.setdefault(r.file, []).append(r)
    return [training_set(f, rs) for f, rs in by_file.items()]


def default_levels_file() -> Path:
    return REPO.parent / "shared" / "data" / "train" / "math_en.jsonl"


#: Level of each kind of levelled maths prompt: SVAMP's one-step grade-school problems below
#: MATH's competition levels 1-5 (MathQA, whose difficulty is not graded, is left out).
def _level(category: str) -> int | None:
    if category.startswith("SVAMP"):
        return 0
    if category.startswith("MATH/") and "/Level " in category:
        return int(category.rsplit("Level ", 1)[1])
    return None


def levelled(path: Path) -> list[OrdinalSet]:
    """An ordinal set from a labelled file with ``source_category`` levels."""
    import json

    texts, levels = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            level = _level(str(row.get("source_category", "")))
            if level is not None:
                texts.append(row["prompt"])
                levels.append(level)
    return [OrdinalSet(f"{path.stem}-levels", texts, levels)] if texts else []


def fingerprint(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.difficulty.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path,
                    help=f"outcome files (default: {', '.join(DEFAULT_FILES)} in "
                         f"{default_outcomes_dir()})")
    ap.add_argument("--out", type=Path, default=MODEL_JSON, help="where to write (default: the "
                    "package's model.json)")
    ap.add_argument("--levels", type=Path, default=default_levels_file(),
                    help="labelled maths prompts with difficulty levels (MATH levels 1-5, SVAMP "
                         "below them; default: %(default)s)")
    ap.add_argument("--no-levels", action="store_true", help="fit on outcomes only")
    args = ap.parse_args(argv)
    paths = list(args.files) or [default_outcomes_dir() / f for f in DEFAULT_FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"error: no outcome file at {missing[0]}", file=sys.stderr)
        return 2
    sets = [training_set(p.stem, read_outcomes(p)) for p in paths]
    ordinal = [] if args.no_levels else levelled(args.levels)
    model = fit_difficulty(sets, difficulty_featurizer(), ordinal=ordinal, meta={
        "trained_on": [p.name for p in paths] + [o.name for o in ordinal],
        "data_sha256": fingerprint([*paths, *([args.levels] if ordinal else [])])})
    model.save(args.out)
    top = sorted(zip(model.weights, range(len(model.weights)), strict=True),
                 key=lambda t: -abs(t[0]))[:10]
    from router.difficulty.features import NAMES

    print(f"wrote {args.out}; strongest signals: "
          + ", ".join(f"{NAMES[i]} {w:+.2f}" for w, i in top), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
