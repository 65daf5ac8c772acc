"""Behaviour of router.classify.classify on clear cases and odd request shapes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from router.classify import TASKS, Classification, classify

REASONING_EN = [
    "Solve for x: 3x + 7 = 22. Show each step.",
    "Prove that the sum of two even integers is even.",
    "A train travels 180 km in 2.5 hours. What is its average speed in km/h?",
    "Write a Python function that returns the n-th Fibonacci number in O(log n) time.",
    "Why does this code raise a KeyError?\n\n```python\nd = {}\nd['a'] += 1\n```",
    "Three people sit in a row. Ann is left of Bo, and Cy is right of Bo. Who is in the middle?",
    "What is the probability of getting at least one six in four rolls of a fair die?",
    "Compute the derivative of $f(x) = x^2 \\sin x$.",
]
EXPRESSION_EN = [
    "Write a short poem about the first snow of winter.",
    "Translate 'good morning, how are you?' into French.",
    "Summarize the following paragraph in one sentence: The council met on Monday to discuss "
    "the new park. Residents asked for more benches and a playground, and the council agreed "
    "to publish a plan next month.",
    "Rewrite this email so it sounds more polite: 'Send me the report now.'",
    "Pretend you are a pirate captain and greet your new crew.",
    "Draft a friendly out-of-office message for the holidays.",
    "Give me three catchy slogans for a neighbourhood bicycle shop.",
]
REASONING_ZH = [
    "解方程：2x + 5 = 17，请写出过程。",
    "一个长方形的长是8厘米，宽是5厘米，它的面积是多少平方厘米？",
    "用Python写一个函数，判断一个数是不是质数。",
    "甲说乙在说谎，乙说丙在说谎，丙说甲和乙都在说谎。请问谁说的是真话？",
    "证明：三角形的内角和等于180度。",
    "小明有15个苹果，给了小红4个，又买了7个，现在有几个？",
]
EXPRESSION_ZH = [
    "请写一首关于春天的现代诗。",
    "把这句话翻译成英文：“今天天气很好，我们去公园散步吧。”",
    "请用一句话概括下面这段话的主要内容：公司今年开设了两家新门店，员工人数增加了三成。",
    "帮我给客户写一封邮件，说明发货会推迟一周，语气要诚恳。",
    "请把这句话改写得更正式一些：这个方案还行，不过得再改改。",
    "写一段朋友圈文案，宣传我们新开的咖啡店。",
]


def user(text: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("prompt", REASONING_EN + REASONING_ZH)
def test_clear_reasoning(prompt: str) -> None:
    c = classify(user(prompt))
    assert c.task == "reasoning", (prompt, c)


@pytest.mark.parametrize("prompt", EXPRESSION_EN + EXPRESSION_ZH)
def test_clear_expression(prompt: str) -> None:
    c = classify(user(prompt))
    assert c.task == "expression", (prompt, c)


def test_clear_cases_are_confident() -> None:
    confident = [classify(user(p)).confidence for p in REASONING_EN + EXPRESSION_EN
                 + REASONING_ZH + EXPRESSION_ZH]
    assert sum(c >= 0.8 for c in confident) >= 0.8 * len(confident)


def test_result_shape() -> None:
    c = classify(user("Write a haiku about rain."))
    assert isinstance(c, Classification)
    assert c.task in TASKS
    assert 0.5 <= c.confidence <= 1.0
    assert isinstance(c.signals, tuple) and all(isinstance(s, str) for s in c.signals)
    assert c.signals, "a clear case names what decided it"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.task = "reasoning"  # type: ignore[misc]


def test_explain_false_skips_signals_only() -> None:
    msgs = user("Calculate 17% of 2,340.")
    a, b = classify(msgs), classify(msgs, explain=False)
    assert (a.task, a.confidence) == (b.task, b.confidence)
    assert b.signals == ()


def test_repeated_context_is_scored_once_with_the_same_result() -> None:
    from router.classify.model import Classifier

    c = Classifier()
    system = {"role": "system", "content": "You are a careful assistant for a logistics firm."}
    asks = ["Summarise this memo in two lines: shipments are late.", "Why is 2^10 = 1024?",
            "继续"]
    first = [c.classify([system, {"role": "user", "content": a}], explain=False) for a in asks]
    info = c.context_cache_info()
    assert (info.misses, info.hits) == (1, 2)
    full = [c.classify([system, {"role": "user", "content": a}]) for a in asks]  # via margin()
    assert [(x.task, x.confidence) for x in first] == [(x.task, x.confidence) for x in full]


def test_code_only() -> None:
    code = ("```js\nfunction debounce(fn, ms) {\n  let t;\n  return (...a) => {\n"
            "    clearTimeout(t);\n    t = setTimeout(() => fn(...a), ms);\n  };\n}\n```")
    c = classify(user(code))
    assert c.task == "reasoning"
    assert any("code" in s for s in c.signals)


def test_mixed_language() -> None:
    assert classify(user("请把这段英文翻译成中文：The weather is lovely today.")).task == \
        "expression"
    assert classify(user("用 SQL 写一个 query：统计每个 department 的平均 salary。")).task == \
        "reasoning"


@pytest.mark.parametrize("messages", [
    [], None, "", 42, {"role": "user"}, [None, 3, "x"], [{"role": "user", "content": None}],
    [{"role": "user", "content": ""}], [{"role": "user", "content": "   \n "}],
    [{"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
      "role": "user"}],
    [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function"}]}],
])
def test_no_text_never_raises(messages: Any) -> None:
    c = classify(messages)
    assert c.task in TASKS and 0.5 <= c.confidence <= 1.0


def test_empty_is_low_confidence_expression() -> None:
    c = classify([{"role": "user", "content": ""}])
    assert (c.task, c.confidence) == ("expression", 0.5)
    assert "no text to classify" in c.signals


@pytest.mark.parametrize("content", [
    12345, 3.5, True, {"type": "text", "text": "Write a poem"}, [{"text": 7}], [{"type": "text"}],
    [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
    [{"type": "text", "text": "Write a poem about cats"}, "and dogs", 5, None],
    ["plain string part"], {"weird": object()},
])
def test_odd_content_shapes(content: Any) -> None:
    c = classify(user(content))
    assert c.task in TASKS


def test_plain_string_is_a_user_turn() -> None:
    assert classify("Solve 2x + 3 = 9 for x.").task == "reasoning"  # type: ignore[arg-type]


def test_image_with_question() -> None:
    msgs = user([
        {"type": "text", "text": "What is the area of this triangle if the base is 6 cm and "
                                 "the height is 4 cm?"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/t.png"}},
    ])
    c = classify(msgs)
    assert c.task == "reasoning"
    assert "image input" in c.signals


def test_multi_turn_uses_last_user_turn() -> None:
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Solve x^2 - 5x + 6 = 0."},
        {"role": "assistant", "content": "x = 2 or x = 3."},
        {"role": "user", "content": "Now write a cheerful birthday poem for my aunt Rosa."},
    ]
    assert classify(msgs).task == "expression"
    msgs[-1] = {"role": "user", "content": "Now solve x^2 - 7x + 12 = 0 the same way."}
    assert classify(msgs).task == "reasoning"


def test_short_follow_up_leans_on_context() -> None:
    maths = [
        {"role": "user", "content": "Prove that there are infinitely many prime numbers."},
        {"role": "assistant", "content": "Suppose there are finitely many..."},
        {"role": "user", "content": "why?"},
    ]
    writing = [
        {"role": "user", "content": "Write a short love poem in the style of a sonnet."},
        {"role": "assistant", "content": "Shall I compare thee..."},
        {"role": "user", "content": "why?"},
    ]
    a, b = classify(maths), classify(writing)
    assert a.task == "reasoning"
    assert b.task == "expression"


def test_system_prompt_is_context() -> None:
    coder = [{"role": "system", "content": "You are a senior Python engineer. Answer with code."},
             {"role": "user", "content": "go on"}]
    assert classify(coder).task == "reasoning"


def test_tool_results_after_last_user_turn() -> None:
    msgs = [
        {"role": "user", "content": "Compute the compound interest on $5,000 at 4% for 3 years."},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "calc", "arguments": "{\"x\": 1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"result\": 624.32}"},
    ]
    c = classify(msgs)
    assert c.task == "reasoning"
    assert "tool calls" in c.signals and "tool results" in c.signals


def test_developer_role_and_unknown_roles() -> None:
    msgs = [{"role": "developer", "content": "Be terse."}, {"role": "critic", "content": "meh"},
            {"role": "user", "content": "Write a limerick about a frog."}]
    assert classify(msgs).task == "expression"


def test_long_document_with_short_instruction() -> None:
    doc = ("The committee reviewed the quarterly figures. Revenue rose 12% to 4.2 million, "
           "costs fell 3%, and headcount grew from 120 to 134. ") * 200
    c = classify(user("Summarize the following report in three bullet points for the board:\n\n"
                      + doc))
    assert c.task == "expression"


def test_very_long_prompt_is_bounded() -> None:
    import time

    text = "Please write a story. " + "lorem ipsum dolor sit amet " * 40_000
    t0 = time.perf_counter()
    c = classify(user(text))
    assert c.task in TASKS
    assert time.perf_counter() - t0 < 1.0  # truncated, not featurised whole (not a benchmark)


def test_emoji_and_astral_characters() -> None:
    c = classify(user("😀🎉 write a fun birthday message for my friend 🎂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"))
    assert c.task == "expression"
    assert all(isinstance(s, str) for s in c.signals)


def test_lone_surrogates_do_not_raise() -> None:
    assert classify(user("bad \ud800 text, write a poem")).task in TASKS
