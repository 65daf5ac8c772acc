"""Labelled prompts: where they are, how they are read, grouped by source and weighted."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from router.classify.overrides import TASKS

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
PACKAGE_DATA = PACKAGE_DIR / "data"
PROJECT_DATA = PACKAGE_DATA / "project.jsonl"
DATA_ENV = "ROUTER_CLASSIFIER_DATA"

#: Files whose prompts are one another's translations, or otherwise share an origin, are one
#: source: a held-out fold never trains on one and tests on its sibling.
FAMILIES = {
    "awesome_chatgpt_prompts": "awesome_chatgpt_prompts",
    "awesome_chatgpt_prompts_zh": "awesome_chatgpt_prompts",
    "mgsm_zh": "gsm8k",  # GSM8K test problems translated into Chinese
    "gaokao_more": "gaokao",  # the same exam as gaokao_math_zh
    "gaokao_math_zh": "gaokao",
}
PROJECT = "project"
NEITHER_SHARE = 1.0
#: A label for questions that are neither task ("explain X"): trained towards confidence 0.5
#: and reported apart from the accuracy figures.
NEITHER = "neither"
LABELS = (*TASKS, NEITHER)


@dataclass(frozen=True)
class Row:
    prompt: str
    label: str  # one of TASKS
    lang: str  # "en" | "zh"
    group: str  # source family used for held-out folds
    source: str  # the row's own "source" field


def default_data_dir() -> Path:
    """``$ROUTER_CLASSIFIER_DATA``, else ``../shared/data/train`` beside the repository."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "train"


def guess_lang(text: str) -> str:
    cjk = sum(1 for ch in text[:2000] if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk >= 2 else "en"


def read_jsonl(path: Path, group: str | None = None) -> list[Row]:
    """Rows of one labelled JSONL file; ``group`` defaults to the file's family name."""
    rows = []
    name = group or FAMILIES.get(path.stem, path.stem)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
            label = obj.get("label")
            prompt = obj.get("prompt")
            if label not in LABELS or not isinstance(prompt, str):
                raise ValueError(f"{path}:{lineno}: needs 'prompt' and 'label' in {LABELS}")
            source = str(obj.get("source", name))
            lang = obj.get("lang") or guess_lang(prompt)
            row_group = PROJECT if source == PROJECT else name
            rows.append(Row(prompt, label, str(lang), row_group, source))
    return rows


def load_dir(data_dir: Path) -> list[Row]:
    files = sorted(data_dir.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl files in {data_dir}")
    rows: list[Row] = []
    for path in files:
        rows.extend(read_jsonl(path))
    return rows


def load_training(data_dir: Path | None = None, project: Path | None = PROJECT_DATA,
                  package_data: Path | None = PACKAGE_DATA) -> list[Row]:
    """The shared data, the public sources shipped in ``router/classify/data`` (written by
    ``python -m router.classify.sources``) and the project's own prompts, in that order."""
    rows = load_dir(data_dir or default_data_dir())
    if package_data is not None:
        for path in sorted(package_data.glob("*.jsonl")):
            if path.name != PROJECT_DATA.name:
                rows.extend(read_jsonl(path))
    if project is not None and project.exists():
        rows.extend(read_jsonl(project, group=PROJECT))
    return rows


def row_weights(rows: Sequence[Row]) -> list[float]:
    """Weights that stop big or templated sources from dominating.

    Each (source, label) group gets a total weight of sqrt(its size); then each (language, label)
    is scaled to the same total, so both classes count equally in each language ("neither"
    rows, if any, weigh ``NEITHER_SHARE`` of a class).
    """
    sizes = Counter((r.group, r.label) for r in rows)
    raw = [1.0 / sizes[(r.group, r.label)] ** 0.5 for r in rows]
    totals: Counter[tuple[str, str]] = Counter()
    for r, w in zip(rows, raw, strict=True):
        totals[(r.lang, r.label)] += w
    return [w / totals[(r.lang, r.label)] * (NEITHER_SHARE if r.label == NEITHER else 1.0)
            for r, w in zip(rows, raw, strict=True)]


def class_balanced_weights(rows: Sequence[Row]) -> list[float]:
    """Every row counts the same, except that each (language, label) totals the same weight.

    Used for calibration: unlike :func:`row_weights`, big sources are not discounted, so the
    confidence is calibrated for rows as they come, with both classes equally likely.
    """
    sizes = Counter((r.lang, r.label) for r in rows)
    return [1.0 / sizes[(r.lang, r.label)] for r in rows]


def describe(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        key = f"{r.lang}/{r.label}"
        out.setdefault(r.group, {})
        out[r.group][key] = out[r.group].get(key, 0) + 1
    return out
