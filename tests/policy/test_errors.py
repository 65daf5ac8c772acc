"""Every kind of bad policy gives its precise ``file:line: key: message``."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import Config
from router.costs.pricing import PricedModel
from router.policy import PolicyError, load_policy, policy_from_text

BASE = """\
version: 1
tasks:
  reasoning: {min_capability: 70}
  expression: {min_capability: 50}
models:
  tiny: {reasoning: 20, expression: 40}
  small: {reasoning: 50, expression: 60}
  mid: {reasoning: 72, expression: 70}
  big: {reasoning: 90, expression: 92}
"""
# Lines appended to BASE start at line 10.

KNOWN = "known: big, huge-ctx, mid, small, think, tiny"

CASES: list[tuple[str, str, str]] = [
    # (name, policy text, one expected problem line)
    ("unknown key",
     BASE.replace("reasoning: {min_capability: 70}", "reasoning: {min_capabilty: 70}"),
     "bad.yaml:3: tasks.reasoning.min_capabilty: unknown key"),
    ("missing key",
     BASE.replace("reasoning: {min_capability: 70}", "reasoning: {}"),
     "bad.yaml:3: tasks.reasoning.min_capability: required key is missing"),
    ("out of range",
     BASE.replace("expression: {min_capability: 50}", "expression: {min_capability: 140}"),
     "bad.yaml:4: tasks.expression.min_capability: "
     "Input should be less than or equal to 100 (got 140)"),
    ("capability out of range",
     BASE.replace("small: {reasoning: 50,", "small: {reasoning: -5,"),
     "bad.yaml:7: models.small.reasoning: Input should be greater than or equal to 0 (got -5)"),
    ("model without tasks", BASE + "  think: {output_multiplier: 2}\n",
     "bad.yaml:10: models.think: give a capability for at least one task (reasoning, expression) "
     "(got {'output_multiplier': 2})"),
    ("unknown model", BASE + "  gpt-5: {reasoning: 95}\n",
     f"bad.yaml:10: models.gpt-5: unknown model 'gpt-5': not in test-config.yaml ({KNOWN})"),
    ("embedding model", BASE + "  embed: {expression: 10}\n",
     "bad.yaml:10: models.embed: 'embed' is an embedding model, not a chat model"),
    ("impossible bar",
     BASE.replace("reasoning: {min_capability: 70}", "reasoning: {min_capability: 95}"),
     "bad.yaml:3: tasks.reasoning.min_capability: no model qualifies for reasoning on route "
     "'auto': needs capability >= 95; the most capable allowed is 'big' with 90"),
    ("bar impossible once a model is denied",
     BASE + "constraints: {deny_models: [big]}\n"
     + "routes:\n  auto-top: {min_capability: {expression: 91}}\n",
     "bad.yaml:12: routes.auto-top.min_capability.expression: no model qualifies for expression "
     "on route 'auto-top': needs capability >= 91; the most capable allowed is 'mid' with 70"),
    ("route whose models cannot qualify",
     BASE + "routes:\n  auto-small:\n    models: [tiny, small]\n",
     "bad.yaml:12: routes.auto-small.models: no model qualifies for reasoning on route "
     "'auto-small': needs capability >= 70; the most capable allowed is 'small' with 50"),
    ("unsure requests can never qualify",
     BASE.replace("  mid: {reasoning: 72, expression: 70}\n  big: {reasoning: 90, expression: 92}\n",
                  "  mid: {reasoning: 72, expression: 30}\n  big: {reasoning: 20, expression: 92}\n")
     + "low_confidence: {treat_as: all_tasks}\n",
     "bad.yaml:10: low_confidence.treat_as: no model meets every task's bar (reasoning >= 70, "
     "expression >= 50) on route 'auto', so unsure requests could never qualify"),
    ("route named like a model", BASE + "routes:\n  big: {}\n",
     "bad.yaml:11: routes.big: 'big' is a model in test-config.yaml: pick another name"),
    ("route with an unknown model", BASE + "routes:\n  auto-x: {models: [mid, nope]}\n",
     f"bad.yaml:11: routes.auto-x.models[1]: unknown model 'nope': not in test-config.yaml "
     f"({KNOWN})"),
    ("built-in route with another task", BASE + "routes:\n  auto:reasoning: {task: expression}\n",
     "bad.yaml:11: routes.auto:reasoning.task: 'auto:reasoning' always serves 'reasoning'"),
    ("near-budget steps out of order",
     BASE + "near_budget:\n  - {at: 0.9, lower_bar_by: 10}\n  - {at: 0.8, lower_bar_by: 5}\n",
     "bad.yaml:12: near_budget[1].at: steps must be in increasing order of 'at'"),
    ("near-budget unknown route", BASE + "near_budget:\n  - {at: 0.9, route: auto-eco}\n",
     "bad.yaml:11: near_budget[0].route: unknown route 'auto-eco'"),
    ("near-budget step that does nothing", BASE + "near_budget:\n  - {at: 0.9}\n",
     "bad.yaml:11: near_budget[0]: give lower_bar_by or route (or both) (got {'at': 0.9})"),
    ("near-budget fraction", BASE + "near_budget:\n  - {at: 80, lower_bar_by: 5}\n",
     "bad.yaml:11: near_budget[0].at: Input should be less than or equal to 1 (got 80)"),
    ("rewrite to nowhere", BASE + "rewrites:\n  gpt-4: gpt-5\n",
     "bad.yaml:11: rewrites.gpt-4: unknown model or route 'gpt-5'"),
    ("rewrite chain", BASE + "rewrites:\n  gpt-4: big\n  legacy: gpt-4\n",
     "bad.yaml:12: rewrites.legacy: 'gpt-4' is itself rewritten: rewrites do not chain"),
    ("rewrite to itself", BASE + "rewrites:\n  big: big\n",
     "bad.yaml:11: rewrites.big: a name cannot be rewritten to itself"),
    ("access with an unknown model", BASE + "access:\n  teams:\n    ads: {allow: [mid, gpt-5]}\n",
     f"bad.yaml:12: access.teams.ads.allow[1]: unknown model 'gpt-5': not in test-config.yaml "
     f"({KNOWN})"),
    ("deny an unknown model", BASE + "constraints:\n  deny_models: [nope]\n",
     f"bad.yaml:11: constraints.deny_models[0]: unknown model 'nope': not in test-config.yaml "
     f"({KNOWN})"),
    ("unknown reference model", BASE + "reference_model: gpt-5\n",
     f"bad.yaml:10: reference_model: unknown model 'gpt-5': not in test-config.yaml ({KNOWN})"),
    ("bad enum", BASE + "low_confidence: {treat_as: strict}\n",
     "bad.yaml:10: low_confidence.treat_as: Input should be 'all_tasks', 'reasoning', "
     "'expression' or 'classified' (got 'strict')"),
    ("bad version", BASE.replace("version: 1", "version: 2"),
     "bad.yaml:1: version: Input should be 1 (got 2)"),
    ("negative cost", BASE + "constraints: {max_cost_per_request_usd: -1}\n",
     "bad.yaml:10: constraints.max_cost_per_request_usd: Input should be greater than 0 (got -1)"),
    ("duplicate key", BASE + "  mid: {reasoning: 1, expression: 1}\n",
     "bad.yaml:10: models.mid: duplicate key"),
    ("invalid YAML", BASE + "routes: [unclosed\n",
     "bad.yaml:11: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("top level not a mapping", "- tasks\n", "bad.yaml:1: the top level must be a mapping"),
    ("no models", BASE.split("models:")[0] + "models: {}\n",
     "bad.yaml:5: models: list at least one model with its capabilities (got {})"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_policy_gives_its_precise_error(
    text: str, expected: str, cfg: Config, cat: dict[str, PricedModel]
) -> None:
    with pytest.raises(PolicyError) as exc:
        policy_from_text(text, cfg, cat, path="bad.yaml")
    assert expected in exc.value.problems, "\n".join(exc.value.problems)


def test_all_problems_of_a_phase_are_reported_at_once(
    cfg: Config, cat: dict[str, PricedModel]
) -> None:
    text = BASE + "  gpt-5: {reasoning: 95}\nrewrites:\n  a: b\nreference_model: nope\n"
    with pytest.raises(PolicyError) as exc:
        policy_from_text(text, cfg, cat, path="bad.yaml")
    assert [p.split(":")[1] for p in exc.value.problems] == ["10", "12", "13"]


def test_base_is_valid(cfg: Config, cat: dict[str, PricedModel]) -> None:
    p = policy_from_text(BASE, cfg, cat, path="ok.yaml")
    # Catalogue chat models without capabilities are a warning, not an error.
    assert any("'huge-ctx' has no capabilities here" in w for w in p.warnings)


def test_directory_sections_merge_and_conflicts_name_both_files(
    tmp_path: Path, cfg: Config, cat: dict[str, PricedModel]
) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text("rewrites:\n  gpt-4: big\n")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("garbage: [")
    p = load_policy(tmp_path, cfg, cat)
    assert p.rewrites == {"gpt-4": "big"}
    (tmp_path / "b.yaml").write_text("rewrites:\n  gpt-4: nope\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(tmp_path, cfg, cat)
    assert exc.value.problems == [f"{tmp_path / 'b.yaml'}:2: rewrites.gpt-4: "
                                  "unknown model or route 'nope'"]
    (tmp_path / "b.yaml").write_text("\n\nmodels:\n  big: {reasoning: 1}\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(tmp_path, cfg, cat)
    assert exc.value.problems == [f"{tmp_path / 'b.yaml'}:3: models: also defined in "
                                  f"{tmp_path / 'a.yaml'}:5"]


def test_missing_file_and_empty_directory(
    tmp_path: Path, cfg: Config, cat: dict[str, PricedModel]
) -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(tmp_path / "nope.yaml", cfg, cat)
    assert exc.value.problems[0].startswith(f"{tmp_path / 'nope.yaml'}: cannot read")
    with pytest.raises(PolicyError) as exc:
        load_policy(tmp_path, cfg, cat)
    assert exc.value.problems == [f"{tmp_path}: no policy files (*.yaml) in this directory"]
