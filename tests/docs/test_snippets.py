"""The docs' YAML is what the gateway accepts: every ```yaml block of the user's pages passes the
strict policy or config parser (an unknown key fails), links within the docs land on a heading,
and the commented `budgets:` example of the shipped policy, uncommented, loads and does what its
comment says."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from router.accounting import budget_error
from router.auth import caller_of
from router.budgets import BudgetExceeded, LedgerRow, open_store
from router.budgets.spec import BudgetSpec, Period, RateLimitSpec, Scope
from router.policy.compile import build_policy
from router.policy.sources import MergedDocument
from router.yamlfile import parse_text
from tests.docs.snippets import (
    REPO,
    Block,
    anchors,
    blocks,
    check_yaml,
    checked_blocks,
    merged,
    shipped_catalogue,
    shipped_config,
    shipped_policy_doc,
    shipped_policy_path,
    uncommented_example,
)

DOCS = REPO / "docs"
PAGES = [*(DOCS / name for name in ("policy.md", "budgets.md", "apis.md", "deployment.md")),
         REPO / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_yaml_block_parses_strictly(page: Path) -> None:
    problems = [p for b in checked_blocks(page) for p in check_yaml(b)]
    assert not problems, "\n".join(problems)


def test_the_budget_pages_have_their_snippets_checked() -> None:
    """Guards against a change of fence or marker that would make the test above vacuous."""
    policy = checked_blocks(DOCS / "policy.md")
    budgets = checked_blocks(DOCS / "budgets.md")
    assert any("budgets:" in b.text and "rate_limits:" in b.text for b in policy)
    assert sum("budgets:" in b.text for b in budgets) >= 1
    assert sum("budget_usd:" in b.text for b in budgets) >= 1
    assert sum(b.text.startswith("store:") for b in budgets) >= 2
    assert len(policy) >= 2 and len(budgets) >= 4


@pytest.mark.parametrize("snippet, expected", [
    ("budgets:\n  teams:\n    search: {dayly: {limit_usd: 50}}\n",
     "docs/x.md:13: budgets.teams.search.dayly: "),
    ("budgets:\n  keys:\n    app: {daily: {limit_usd: 5, hard: true}}\n",
     "docs/x.md:13: budgets.keys.app.daily.hard: unknown key"),
    ("budgets:\n  users:\n    alice: {weekly: {limit_usd: -1}}\n",
     "docs/x.md:13: budgets.users.alice.weekly.limit_usd: "),
    ("budgets:\n  global: {monthly: {limit_usd: 5, soft_usd: 9}}\n",
     "soft_usd must not exceed limit_usd"),
    ("rate_limits:\n  teams: {search: {requests_per_hour: 5}}\n",
     "docs/x.md:12: rate_limits.teams.search.requests_per_hour: unknown key"),
    ("budget:\n  global: {monthly: {limit_usd: 5}}\n",
     "docs/x.md:11: budget: unknown key"),
    ("store:\n  url: redis://r:6379/0\n  fail_mode: ajar\n",
     "docs/x.md:13: store.fail_mode: "),
    ("auth:\n  keys:\n    - {alias: a, key_env: K, budget_usd: {hourly: 1}}\n",
     "docs/x.md:13: auth.keys[0].budget_usd.hourly: "),
    ("models:\n  gpt-4o: {reasoning: 70, provider: openai}\n",
     "docs/x.md:12: models.gpt-4o.provider: unknown key (as a policy fragment)"),
    ("- budgets\n", "not a policy or config.yaml fragment"),
])
def test_a_bad_snippet_is_caught(snippet: str, expected: str) -> None:
    """The checker itself: an unknown key, a bad value or an ambiguous block fails, naming the
    page's line."""
    block = Block("docs/x.md", 10, "yaml", snippet, None)
    problems = check_yaml(block)
    assert any(expected in p for p in problems), problems


def test_a_marked_block_is_left_out() -> None:
    page = "Text.\n\n<!-- not-checked: a replay model map -->\n```yaml\nignore: []\n```\n"
    found = list(blocks(page, "x.md"))
    assert len(found) == 1 and found[0].marker == "<!-- not-checked: a replay model map -->"
    assert check_yaml(found[0])  # it would fail if it were checked


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_links_within_the_docs_land_on_a_heading(page: Path) -> None:
    text = page.read_text()
    bad = []
    for target, anchor in re.findall(r"\]\(([\w./-]*?\.md)?#([\w-]+)\)", text):
        other = page if not target else (page.parent / target)
        if other.exists() and anchor not in anchors(other.read_text()):
            bad.append(f"{target}#{anchor}")
    assert not bad, bad


# -- the commented example in the shipped policy -------------------------------------------------

def example_policy_doc() -> MergedDocument:
    path = shipped_policy_path()
    files = [path] if path.is_file() else sorted(path.glob("*.yaml"))
    for f in files:
        text = f.read_text()
        if "\n# budgets:\n" in text:
            example, line = uncommented_example(text, "budgets:")
            doc = parse_text("\n" * (line - 1) + example, f"{f} (uncommented)", env={})
            return merged(shipped_policy_doc(), doc)
    raise AssertionError(f"no commented `# budgets:` example in {path}")


def test_shipped_policy_has_no_budgets() -> None:
    config, _ = shipped_config()
    policy = build_policy(shipped_policy_doc(), config, shipped_catalogue())
    caller = caller_of(config.auth.keys[0])
    assert policy.budget_rules.for_caller(caller) == ((), ())


def test_commented_example_uncommented_applies_as_documented(tmp_path: Path) -> None:
    """Uncommented: the local-dev key of config.yaml gets the key's daily and total budgets,
    its user's and team's, and the global one, and its rate limit; the daily $5 refuses the
    request that would pass it with 429 budget_exceeded; a spent `total` with block_zero_cost
    refuses even free requests, a spent daily budget without it lets them through."""
    config, _ = shipped_config()
    doc = example_policy_doc()
    assert set(doc.data["budgets"]) == {"global", "teams", "users", "keys"}
    policy = build_policy(doc, config, shipped_catalogue())
    key = next(k for k in config.auth.keys if k.alias == "local-dev")
    assert (key.user, key.team) == ("dev", "default")
    budgets, rates = policy.budget_rules.for_caller(caller_of(key))
    assert set(budgets) == {
        BudgetSpec(Scope.KEY, "local-dev", Period.DAILY, 5_000_000),
        BudgetSpec(Scope.KEY, "local-dev", Period.TOTAL, 100_000_000, block_zero_cost=True),
        BudgetSpec(Scope.USER, "dev", Period.WEEKLY, 20_000_000),
        BudgetSpec(Scope.TEAM, "default", Period.MONTHLY, 200_000_000),
        BudgetSpec(Scope.GLOBAL, "global", Period.MONTHLY, 1_000_000_000),
    }
    assert rates == (RateLimitSpec(Scope.KEY, "local-dev", 60, 200_000),)
    # the most specific first: the key's budgets name the refusal
    assert [b.scope for b in budgets][:2] == [Scope.KEY, Scope.KEY]

    async def spend() -> None:
        store = open_store(f"sqlite:///{tmp_path}/router.db", timezone=config.store.timezone)
        t0 = 1_780_000_000.0
        day = 86_400.0
        n = 0

        async def pay(micro: int, now: float) -> None:
            nonlocal n
            n += 1
            r = await store.reserve(f"r{n}", budgets, micro, now=now)
            await store.settle(r, micro, LedgerRow(f"r{n}", "gpt-4o", "local-dev"), now=now)

        try:
            await pay(4_900_000, t0)
            with pytest.raises(BudgetExceeded) as exc:
                await store.reserve("over", budgets, 200_000, now=t0 + 1)
            e = exc.value
            assert (e.scope, e.scope_id, e.period) == ("key", "local-dev", "daily")
            err = budget_error(e)
            assert (err.status, err.type, err.code) == (429, "budget_exceeded", "budget_exceeded")
            assert "retry-after" in err.headers
            # a free request passes the spent daily budget (no block_zero_cost on it)
            await store.release(await store.reserve("free-1", budgets, 0, now=t0 + 2))

            # spend the rest of the $100 total on later days, as much as every budget allows
            now = t0
            for d in range(1, 60):
                now = t0 + d * day
                status = await store.budget_status(budgets, now=now)
                room = min(s.remaining_micro for s in status)
                if room:
                    await pay(room, now)
                total = next(s for s in status if s.budget.period == Period.TOTAL)
                if total.remaining_micro == room:
                    break
            status = await store.budget_status(budgets, now=now)
            total = next(s for s in status if s.budget.period == Period.TOTAL)
            assert total.used_micro == 100_000_000, status
            with pytest.raises(BudgetExceeded) as exc:
                await store.reserve("free-2", budgets, 0, now=now + day)
            assert (exc.value.period, exc.value.reset_at) == ("total", None)
            assert "retry-after" not in budget_error(exc.value).headers
        finally:
            await store.close()

    asyncio.run(spend())
