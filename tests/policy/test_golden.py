"""Golden cases for the default policy: prompt -> (task class, model), English and Chinese,
through the real token counter and the real classifier, as ``POST /v1/route`` does it.

Skipped (with the reason) while the classifier cannot be loaded, e.g. its weights
(router/classify/model.json, weights.bin) are missing or stale; the decisions per task class are
also pinned without the classifier in test_default_policy.py.
"""

from __future__ import annotations

import pytest

from router.config import load_config
from router.costs.pricing import resolve_catalogue
from router.policy import load_policy
from router.policy.request import load_classifier, route_body
from tests.policy.conftest import REPO

CLASSIFY, WHY = load_classifier()
pytestmark = pytest.mark.skipif(
    CLASSIFY is None,
    reason=f"the classifier cannot be loaded ({WHY}); build its weights with "
    "`python -m router.classify.train`, then re-run tests/policy/test_golden.py",
)

REASONING, EXPRESSION = "deepseek-reasoner", "deepseek-chat"

GOLDEN: list[tuple[str, str, str]] = [
    # English: reasoning
    ("Prove that the square root of 2 is irrational.", "reasoning", REASONING),
    ("Write a Python function that returns the n-th Fibonacci number with memoization and "
     "explain its time complexity.", "reasoning", REASONING),
    ("Solve for x: 3x + 7 = 22. Show each step.", "reasoning", REASONING),
    ("A train leaves at 3pm at 80 km/h and another at 4pm at 100 km/h on the same track. "
     "When does the second catch up?", "reasoning", REASONING),
    # English: expression
    ("Write a warm thank-you note to my colleague for helping me move house.",
     "expression", EXPRESSION),
    ("Translate into French: the meeting has been moved to Thursday afternoon.",
     "expression", EXPRESSION),
    ("Write a short poem about autumn leaves.", "expression", EXPRESSION),
    # Chinese: reasoning
    ("证明:对任意正整数 n,n³ − n 都能被 6 整除。", "reasoning", REASONING),
    ("用 Python 实现快速排序,并分析它的时间复杂度。", "reasoning", REASONING),
    ("解方程组:x + y = 10,x − y = 2。", "reasoning", REASONING),
    # Chinese: expression
    ("帮我写一段给客户的新年祝福语,语气真诚一些。", "expression", EXPRESSION),
    ("把这句话翻译成英文:今天的会议改到下午三点。", "expression", EXPRESSION),
    ("写一首关于秋天的五言绝句。", "expression", EXPRESSION),
]


@pytest.fixture(scope="module")
def default():  # type: ignore[no-untyped-def]
    cfg = load_config(REPO / "config.yaml")
    return load_policy(REPO / "policies" / "default.yaml", cfg, resolve_catalogue(cfg))


@pytest.mark.parametrize(("prompt", "task", "model"), GOLDEN, ids=[g[0][:30] for g in GOLDEN])
def test_golden(prompt: str, task: str, model: str, default) -> None:  # type: ignore[no-untyped-def]
    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    explained = route_body(body, default, classify=CLASSIFY)
    d = explained.decision
    assert (d.task, d.model) == (task, model), (
        f"confidence {d.confidence}, source {d.task_source}, signals {explained.signals}")
