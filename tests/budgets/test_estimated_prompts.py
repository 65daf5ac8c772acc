"""Issue 16 point 2: reservations where the prompt count is an estimate.

The bound reserved for an estimated prompt (router.tokens.chat_prompt_bound) must be at least
what real byte-level tokenizers make of it, on the text the estimate is worst at; the
Accountant must reserve that bound (up to the context window) and report what a settle may
still exceed. The gateway-level proofs are in tests/gateway/test_budgets.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from router.accounting import Accountant
from router.auth import Caller
from router.budgets import BudgetSpec, LedgerRow, Period, Scope, open_store
from router.config import config_from_text
from router.costs.estimate import cost_micro
from router.costs.pricing import resolve_catalogue
from router.tokens import (
    TEMPLATE_ALLOWANCE,
    TOOLS_ALLOWANCE,
    _litellm_tokenizer_dir,
    chat_prompt_bound,
    configure_offline,
    count_chat_tokens,
    embedding_input_bound,
    is_exact,
    text_counter,
)

#: Text the estimate (0.225 tokens per non-CJK character, 1.35 per CJK one) is worst at.
HARD = [
    "2024-12-31 15:42:07 #4471-9920-1837 0x7f3a9c",
    "🙂🙃😉😊😇🥰😍🤩👨‍👩‍👧‍👦🏳️‍🌈",
    "ราคาเท่าไหร่ครับ สวัสดีตอนเช้า",
    "नमस्ते, आप कैसे हैं? मैं ठीक हूँ।",
    "Привет, как дела? Всё хорошо, спасибо.",
    "SGVsbG8gd29ybGQhIFRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dC4=",
    "def f(x):\n\treturn {'a': [1, 2, 3], 'b': x ** 2}  # ünïcödé",
    "　　　\n\n\n\t\t\t    ",
    "数学题：甲乙两人相距１２０千米，同时出发，３小时后相遇。",
    "x" * 3 + "\ud83d",  # a lone surrogate, as JavaScript cuts an emoji
]


@pytest.fixture(scope="module")
def real_counters() -> dict[str, Callable[[str], int]]:
    """Byte-level BPE tokenizers the gateway has at hand (Claude 2's stands for Anthropic's)."""
    configure_offline()
    d = _litellm_tokenizer_dir()
    assert d is not None
    claude2 = Tokenizer.from_file(str(d / "anthropic_tokenizer.json"))
    return {
        "cl100k_base": text_counter("cl100k_base"),
        "o200k_base": text_counter("o200k_base"),
        "deepseek": text_counter("deepseek"),
        "claude-2": lambda t: len(claude2.encode(t, add_special_tokens=False).ids),
    }


@pytest.mark.parametrize("text", HARD)
def test_the_bound_covers_what_real_tokenizers_make_of_hard_text(
    text: str, real_counters: dict[str, Callable[[str], int]]
) -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": text}]}  # fmt: skip
    bound = chat_prompt_bound(body, "estimate")
    assert bound is not None
    clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    for name, count in real_counters.items():
        # the billed count: the texts plus OpenAI's framing (3 a message, 3 to prime the reply)
        billed = 3 + 2 * 3 + count("system") + count("Be brief.") + count("user") + count(clean)
        assert billed <= bound - TEMPLATE_ALLOWANCE, (name, billed, bound)
    # the estimate alone falls short on most of these: that is why it is not what is reserved
    assert count_chat_tokens(body, "estimate") < bound


def test_exact_tokenizers_need_no_bound() -> None:
    body = {"messages": [{"role": "user", "content": "hello"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]}  # fmt: skip
    assert is_exact("o200k_base") and is_exact("cl100k_base") and is_exact("deepseek")
    assert not is_exact("estimate")
    assert chat_prompt_bound(body, "o200k_base") is None
    bound = chat_prompt_bound(body, "estimate")
    assert bound == count_chat_tokens(body, "utf8-bytes") + TEMPLATE_ALLOWANCE + TOOLS_ALLOWANCE
    assert embedding_input_bound(["ab", "ü"], "cl100k_base") is None
    assert embedding_input_bound(["ab", "ü"], "estimate") == 2 + 2 + 2 * 4
    assert embedding_input_bound([1, 2, 3], "estimate") == 3 + 4  # token ids: one input


CONFIG = """
store: {{url: "sqlite:///{db}"}}
policy: null
models:
  est:
    provider: openai
    upstream_model: some-model
    api_base: http://127.0.0.1:9/v1
    tokenizer: estimate
    context_window: 1000
    max_output_tokens: 100
    price: {{input_per_1m: 2.0, output_per_1m: 8.0}}
"""


async def test_the_accountant_reserves_the_bound_up_to_the_context_window(tmp_path: Path) -> None:
    cfg = config_from_text(CONFIG.format(db=tmp_path / "b.db"), "config.yaml", {})
    priced = resolve_catalogue(cfg)["est"]
    store = open_store(cfg.store.url)
    budget = BudgetSpec(Scope.KEY, "k", Period.TOTAL, 10**9)
    caller = Caller("k", "u", "t", None, budgets=(budget,))
    acct = Accountant(store, cfg)
    price = priced.price
    out = cost_micro(price, 0, 10)
    try:
        h = await acct.reserve("a", caller, None, priced, 20, 10, 1, None, prompt_bound=96)
        assert h.prompt_tokens == 96
        assert h.reservation.amount_micro == cost_micro(price, 96, 0) + out
        assert h.overshoot_bound_micro == cost_micro(price, 1000 - 96, 0)
        # a bound past the context window: the provider refuses such a prompt (never billed)
        h2 = await acct.reserve("b", caller, None, priced, 20, 10, 1, None, prompt_bound=5000)
        assert (h2.prompt_tokens, h2.overshoot_bound_micro) == (1000, 0)
        # an exact count is reserved as counted
        h3 = await acct.reserve("c", caller, None, priced, 20, 10, 1, None)
        assert h3.reservation.amount_micro == cost_micro(price, 20, 0) + out
        # billed within the bound: no overshoot; above it (an image, a long template): reported
        row = LedgerRow("a", "est", prompt_tokens=90, completion_tokens=10)
        assert await acct.settle(h, cost_micro(price, 90, 10), row) == 0
        row = LedgerRow("c", "est", prompt_tokens=50, completion_tokens=10)
        assert await acct.settle(h3, cost_micro(price, 50, 10), row) == (
            cost_micro(price, 50, 10) - h3.reservation.amount_micro)
        (st,) = await store.budget_status([budget])
        assert st.spent_micro == cost_micro(price, 90, 10) + cost_micro(price, 50, 10)
    finally:
        await store.close()
