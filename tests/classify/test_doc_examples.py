"""Every example prompt in the README and docs/ is classified as the docs show it, by the shipped
model (no task override). A new example in the docs must be added to ``DOCUMENTED``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from router.classify import classify

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        REPO / "router" / "classify" / "__init__.py"]

#: prompt -> the task the docs show or imply for it, and the least confidence they show (the
#: default policy treats a task under 0.6 as unsure, which would change the decision shown).
DOCUMENTED: dict[str, tuple[str, float]] = {
    "Prove that there are infinitely many primes": ("reasoning", 0.9),  # README, policy.md
    "Prove that there are infinitely many primes.": ("reasoning", 0.9),  # classifier.md
    "写一首秋天的诗": ("expression", 0.6),  # README: a route explained for a poem
    "把这句话翻译成英文：你好": ("expression", 0.6),  # classifier.md
    "Prove that sqrt(2) is irrational.": ("reasoning", 0.9),  # the package docstring
    "Hello": ("expression", 0.5),  # README's first call: chat
}

PLACEHOLDERS = {"text"}  # `router route "text"`: the syntax, not an example
_PATTERNS = [
    re.compile(r"router (?:route|classify) \"([^\"]+)\""),  # shell examples
    re.compile(r"\"content\": \"([^\"]+)\""),  # JSON bodies
    re.compile(r"'content':\s*'([^']+)'"),  # Python literals
    re.compile(r"\{\"prompt\": \"([^\"]+)\"\}"),  # JSON lines
    re.compile(r"classify\(\[\{\"role\": \"user\", \"content\": \"([^\"]+)\"\}\]\)"),
]


def examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for pattern in _PATTERNS:
            found += [(path.name, m) for m in pattern.findall(text)
                      if m not in PLACEHOLDERS]
    return found


def test_every_example_is_known() -> None:
    found = examples()
    assert {p for _, p in found} <= set(DOCUMENTED), (
        "an example prompt in the docs has no documented task here", found)
    assert "Prove that there are infinitely many primes" in {p for _, p in found}


@pytest.mark.parametrize(("prompt", "task", "least"),
                         [(p, t, c) for p, (t, c) in DOCUMENTED.items()])
def test_documented_examples(prompt: str, task: str, least: float) -> None:
    c = classify([{"role": "user", "content": prompt}])
    assert c.task == task and c.confidence >= least, (prompt, c)
