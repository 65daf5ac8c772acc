"""The shipped policies: valid against the shipped config, every capability sourced, and the
decisions the default makes for each task class (with the classifier's answer given)."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from router.config import Config, load_config
from router.costs.pricing import PricedModel, resolve_catalogue
from router.policy import BudgetState, Policy, RouteFacts, evaluate, json_schema, load_policy
from router.policy.schema import TASKS
from tests.policy.conftest import REPO, Guess

DEFAULT = REPO / "policies" / "default.yaml"
EXAMPLES = sorted((REPO / "policies" / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def real_cfg() -> Config:
    return load_config(REPO / "config.yaml")


@pytest.fixture(scope="module")
def real_cat(real_cfg: Config) -> dict[str, PricedModel]:
    return resolve_catalogue(real_cfg)


@pytest.fixture(scope="module")
def default(real_cfg: Config, real_cat: dict[str, PricedModel]) -> Policy:
    return load_policy(DEFAULT, real_cfg, real_cat)


@pytest.mark.parametrize("path", [DEFAULT, *EXAMPLES], ids=lambda p: Path(p).name)
def test_shipped_policies_are_valid(path: Path, real_cfg: Config,
                                    real_cat: dict[str, PricedModel]) -> None:
    policy = load_policy(path, real_cfg, real_cat)
    assert policy.warnings == ()  # every chat model of config.yaml is scored
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema())


def test_examples_are_commented() -> None:
    assert len(EXAMPLES) >= 2
    for path in EXAMPLES:
        assert path.read_text().count("#") >= 10, path


def test_every_capability_cites_its_source() -> None:
    lines = DEFAULT.read_text().splitlines()
    start = lines.index("models:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()
               and not lines[i].startswith("#"))
    sources = re.compile(r"GPQA|LMArena|MMLU|AIME|LiveCodeBench|MATH|C-Eval|est\.")
    scored = [s for s in lines[start:end] if re.match(r"\s+(reasoning|expression):", s)]
    assert len(scored) == 22
    for s in scored:
        assert "#" in s and sources.search(s.split("#", 1)[1]), s


def test_tasks_match_the_classifier() -> None:
    model = pytest.importorskip("router.classify.model")
    assert tuple(model.TASKS) == TASKS


def _auto(policy: Policy, text_tokens: int = 40, **kw: object) -> str:
    return evaluate(RouteFacts("auto", text_tokens, **kw), policy).model  # type: ignore[arg-type]


def test_default_decisions_by_task(default: Policy) -> None:
    assert _auto(default, classification=Guess("reasoning", 0.9)) == "deepseek-reasoner"
    assert _auto(default, classification=Guess("expression", 0.9)) == "deepseek-chat"
    # Unsure: both bars apply; the cheapest model meeting both.
    assert _auto(default, classification=Guess("expression", 0.52)) == "deepseek-reasoner"
    # A 200K-token document only fits the 1M-context models; gemini-2.5-flash is the cheaper.
    assert _auto(default, 200_000, classification=Guess("expression", 0.9)) == "gemini-2.5-flash"


def test_default_routes_and_budget_steps(default: Policy) -> None:
    r = Guess("reasoning", 0.9)
    e = Guess("expression", 0.9)
    assert evaluate(RouteFacts("auto-cheap", 40, classification=e), default).model == \
        "gpt-4.1-nano"
    assert evaluate(RouteFacts("auto-best", 40, classification=e), default).model == \
        "claude-sonnet-4-5"
    assert evaluate(RouteFacts("auto-local", 40, classification=r), default).model == \
        "llama-3.1-8b-local"
    near = BudgetState({"team:default/monthly": 0.85})
    assert evaluate(RouteFacts("auto", 40, classification=r), default, budget=near).model == \
        "deepseek-chat"
    last = BudgetState({"team:default/monthly": 0.97})
    assert evaluate(RouteFacts("auto", 40, classification=r), default, budget=last).model == \
        "gpt-4.1-nano"
    assert evaluate(RouteFacts("gpt-3.5-turbo", 40, classification=e), default).model == \
        "deepseek-chat"
