"""Rebuild the public training files in ``router/classify/data/`` from repository snapshots.

``python -m router.classify.sources --mirror DIR`` reads each source's files from a git snapshot
``DIR/<owner>+<name>/repo`` (the layout the project's snapshot tool writes; any bare or normal
clone works) and writes one JSONL file per source, each row
``{"prompt", "label", "source_category", "source", "lang", "licence", "id"}`` as
``../shared/data/train`` does. Labels follow each source's own categories (see ``SOURCES``);
``"neither"`` marks questions that are neither task ("explain X"): the training pulls them
towards confidence 0.5. Only sources whose licence allows commercial use are listed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from router.classify.data import PACKAGE_DIR, guess_lang
from router.classify.features import truncate

OUT_DIR = PACKAGE_DIR / "data"

Row = dict[str, str]


def _git(mirror: Path, repo: str, path: str) -> str:
    git_dir = mirror / repo.replace("/", "+") / "repo"
    return subprocess.run(["git", "-C", str(git_dir), "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout.decode("utf-8")


def _clip(text: str) -> str:
    """What the classifier reads of a long prompt (its head and tail): nothing more is stored."""
    return truncate(text.strip())


def _pick(key: str, n: int) -> int:
    """A deterministic choice among ``n`` (templates, ...) from a row's key."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % n


def _row(name: str, i: int, prompt: str, label: str, category: str, source: str,
         licence: str, lang: str | None = None) -> Row:
    prompt = _clip(prompt)
    return {"prompt": prompt, "label": label, "source_category": category, "source": source,
            "lang": lang or guess_lang(prompt), "licence": licence, "id": f"{name}-{i}"}


# -- FOLIO: first-order-logic stories in plain English (premises, conclusion) ----------------

_FOLIO_TEMPLATES = (
    "{premises}\n\nBased on the statements above, is the following true, false, or uncertain? "
    "{conclusion}",
    "Premises:\n{bullets}\n\nConclusion: {conclusion}\n\nDoes the conclusion follow from the "
    "premises?",
    "Consider the following facts. {premises} Can we conclude that the statement \"{conclusion}\" "
    "is true?",
    "{premises}\nQuestion: {conclusion} True, false, or unknown? Explain your answer.",
)


def folio(mirror: Path) -> Iterator[Row]:
    repo = "Yale-LILY/FOLIO"
    seen: dict[str, int] = {}
    i = 0
    for split in ("train", "validation"):
        path = f"data/v0.0/folio-{split}.jsonl"
        for line in _git(mirror, repo, path).split("\n"):
            if not line.strip():
                continue
            ex = json.loads(line)
            story = " ".join(ex["premises"])  # (the validation file has no story ids)
            if seen.get(story, 0) >= 2:  # stories repeat their premises: two conclusions each
                continue
            seen[story] = seen.get(story, 0) + 1
            premises = [p.strip() for p in ex["premises"] if p.strip()]
            t = _FOLIO_TEMPLATES[_pick(ex["conclusion"], len(_FOLIO_TEMPLATES))]
            prompt = t.format(premises=" ".join(premises), conclusion=ex["conclusion"].strip(),
                              bullets="\n".join(f"- {p}" for p in premises))
            yield _row("folio", i, prompt, "reasoning", "FOLIO/" + split, f"{repo}:{path}",
                       "CC-BY-SA-4.0", "en")
            i += 1


# -- AGIEval: LSAT analytical and logical reasoning, SAT maths (English exams) ----------------

def _agieval(mirror: Path, name: str, files: Sequence[tuple[str, int]]) -> Iterator[Row]:
    repo = "ruixiangcui/AGIEval"
    i = 0
    for stem, cap in files:
        path = f"data/v1/{stem}.jsonl"
        for n, line in enumerate(_git(mirror, repo, path).split("\n")):
            if n >= cap or not line.strip():
                break
            ex = json.loads(line)
            parts = [ex.get("passage") or "", ex["question"], "\n".join(ex.get("options") or [])]
            prompt = "\n".join(p.strip() for p in parts if p and p.strip())
            yield _row(name, i, prompt, "reasoning", f"AGIEval/{stem}", f"{repo}:{path}", "MIT",
                       "en")
            i += 1


def lsat(mirror: Path) -> Iterator[Row]:
    return _agieval(mirror, "lsat", (("lsat-ar", 230), ("lsat-lr", 300)))


def sat_math(mirror: Path) -> Iterator[Row]:
    return _agieval(mirror, "sat_math", (("sat-math", 220),))


# -- TheoremQA: theorem-driven questions (maths, physics, EE/CS, finance) ---------------------

def theoremqa(mirror: Path) -> Iterator[Row]:
    repo, path = "wenhuchen/TheoremQA", "theoremqa_test.json"
    i = 0
    for ex in json.loads(_git(mirror, repo, path)):
        if ex.get("Picture"):  # refers to a figure the prompt does not carry
            continue
        yield _row("theoremqa", i, ex["Question"], "reasoning", f"TheoremQA/{ex['field']}",
                   f"{repo}:{path}", "MIT", "en")
        i += 1


# -- MGSM: GSM8K problems translated by people (Chinese) --------------------------------------

def mgsm_zh(mirror: Path) -> Iterator[Row]:
    repo, path = "google-research/url-nlp", "mgsm/mgsm_zh.tsv"
    for i, line in enumerate(x for x in _git(mirror, repo, path).split("\n") if x.strip()):
        question = line.split("\t")[0]
        yield _row("mgsm_zh", i, question, "reasoning", "MGSM/zh", f"{repo}:{path}",
                   "CC-BY-4.0", "zh")


# -- Arena-Hard v2.0: real Chatbot Arena prompts (coding, maths, creative writing) -------------

_FOREIGN = re.compile(r"[\u3040-\u30ff\uac00-\ud7af\u0400-\u04ff\u0600-\u06ff\u0900-\u0dff"
                      r"\u0e00-\u0e7f]")


def arena_hard(mirror: Path) -> Iterator[Row]:
    repo, path = "lmarena/arena-hard-auto", "data/arena-hard-v2.0/question.jsonl"
    labels = {"coding": "reasoning", "math": "reasoning", "creative_writing": "expression"}
    i = 0
    for line in _git(mirror, repo, path).split("\n"):
        if not line.strip():
            continue
        ex = json.loads(line)
        label = labels.get(ex.get("subcategory", ""))
        prompt = ex["prompt"]
        if label is None or len(_FOREIGN.findall(prompt)) > 5:  # English and Chinese only
            continue
        lang = guess_lang(prompt)
        if lang == "en" and sum(not c.isascii() for c in prompt[:2000]) > 0.2 * len(prompt[:2000]):
            continue  # another language in Latin script with accents, or mostly symbols
        yield _row("arena_hard", i, prompt, label, f"arena-hard-v2.0/{ex['subcategory']}",
                   f"{repo}:{path}", "Apache-2.0")
        i += 1


# -- Chinese-LLaMA-Alpaca: the authors' test prompts by category (Chinese) --------------------

_CLA = {"CODE": "reasoning", "REASONING": "reasoning", "GENERATION": "expression",
        "TRANSLATION": "expression", "QA": "neither", "OQA": "neither", "LITERATURE": "neither"}


def chinese_llama_alpaca(mirror: Path) -> Iterator[Row]:
    repo = "ymcui/Chinese-LLaMA-Alpaca"
    folders = ("f16-p7b-p13b-33b", "q4_7b-13b", "q8_13b-p7b-p13b", "q8_7b-13b-p7b")
    seen: set[str] = set()
    i = 0
    for category, label in _CLA.items():
        for folder in folders:
            path = f"examples/{folder}/{category}.md"
            for line in _git(mirror, repo, path).split("\n"):
                cells = line.split("|")
                if len(cells) < 4 or not cells[1].strip().isdigit():
                    continue
                prompt = cells[2].replace("<br/>", "\n").replace("</br>", "\n").strip()
                if not prompt or prompt in seen:
                    continue
                seen.add(prompt)
                yield _row("chinese_llama_alpaca", i, prompt, label, f"examples/{category}",
                           f"{repo}:{path}", "Apache-2.0", "zh")
                i += 1


# -- GAOKAO-Bench: Chinese language (writing, text reading) and physics questions -------------

_GAOKAO = (
    ("2010-2022_Chinese_Language_Language_and_Writing_Skills_Open-ended_Questions", "expression"),
    ("2010-2022_Chinese_Language_Practical_Text_Reading", "expression"),
    ("2010-2022_Chinese_Language_Literary_Text_Reading", "expression"),
    ("2010-2022_Physics_Open-ended_Questions", "reasoning"),
)


def gaokao_more(mirror: Path) -> Iterator[Row]:
    repo = "OpenLMLab/GAOKAO-Bench"
    i = 0
    for stem, label in _GAOKAO:
        path = f"Data/Subjective_Questions/{stem}.json"
        for ex in json.loads(_git(mirror, repo, path))["example"]:
            question = re.sub(r"^\s*\d+\s*[.．、]\s*(（\s*\d+\s*分\s*）)?", "", ex["question"])
            yield _row("gaokao_more", i, question, label, f"GAOKAO/{stem}", f"{repo}:{path}",
                       "Apache-2.0", "zh")
            i += 1


SOURCES: dict[str, Callable[[Path], Iterator[Row]]] = {
    "folio": folio, "lsat": lsat, "sat_math": sat_math, "theoremqa": theoremqa,
    "mgsm_zh": mgsm_zh, "arena_hard": arena_hard, "chinese_llama_alpaca": chinese_llama_alpaca,
    "gaokao_more": gaokao_more,
}


def write(name: str, rows: Sequence[dict[str, Any]], out_dir: Path = OUT_DIR) -> Path:
    path = out_dir / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.classify.sources", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, required=True,
                    help="directory of snapshots, one <owner>+<name>/repo per repository")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("names", nargs="*", default=list(SOURCES), help="sources to rebuild")
    args = ap.parse_args(argv)
    for name in args.names:
        rows = list(SOURCES[name](args.mirror))
        path = write(name, rows, args.out)
        counts: dict[str, int] = {}
        for r in rows:
            key = f"{r['lang']}/{r['label']}"
            counts[key] = counts.get(key, 0) + 1
        print(f"{path}: {len(rows)} rows {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
