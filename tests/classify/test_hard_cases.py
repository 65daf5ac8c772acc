"""The kinds of prompt issue 14 found misclassified, written afresh for these tests (none of them
is in the training data): what a reasonable person would call them."""

from __future__ import annotations

from typing import Any

import pytest

from router.classify import classify
from router.classify.data import PROJECT_DATA


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


CODE = "```python\ndef total(items):\n    return sum(i.price * i.qty for i in items)\n```"
TRACE = ("```\nTraceback (most recent call last):\n  File \"shop.py\", line 12, in checkout\n"
         "KeyError: 'discount'\n```")

REASONING = [
    # proofs and maths asked for in words
    "Prove that the difference between two consecutive square numbers is always odd.",
    "Show that no triangle can have two obtuse angles.",
    "Show that the sum of any five consecutive integers is a multiple of five.",
    "Prove that if the product of two integers is odd, both integers are odd.",
    "How many ways can the letters of the word LEVEL be arranged?",
    "My test scores were 71, 84, 84, 90 and 96. What is the median and what is the variance?",
    "证明：两个连续奇数的平方差一定是8的倍数。",
    "有多少种方法把5本不同的书分给3个人，每人至少一本？",
    # logic puzzles in plain words
    "Tom says Jim is lying. Jim says Kim is lying. Kim says both Tom and Jim are lying. Who is "
    "telling the truth?",
    "Each of the four doors is labelled, and every label is false. The sign on the red door "
    "says the treasure is behind the blue door. Where could the treasure be?",
    "四个同学参加比赛，赛后小李说：我不是第一。小王说：小张是第一。小张说：小王说错了。小赵说：我是第二。"
    "已知只有一个人说了假话，他们各自得了第几名？",
    "桌上有三顶红帽子和两顶白帽子。三个人排成一列，每人戴一顶，后面的人能看见前面所有人的帽子。最后一个人说"
    "不知道自己帽子的颜色，中间的人也说不知道，最前面的人却说他知道了。他戴的是什么颜色？",
]
EXPRESSION = [
    # writing around pasted code
    f"Write a friendly email to the finance team explaining what this function does:\n{CODE}",
    f"Write a short Slack note for the support team about this crash, no jargon please:\n"
    f"{TRACE}",
    f"Write a haiku inspired by this function:\n{CODE}",
    "Translate the comments in this script into German, keep the code unchanged:\n"
    "```bash\n# back up the database\npg_dump shop > shop.sql\n# upload it\naws s3 cp shop.sql "
    "s3://backups/\n```",
    f"给财务同事写一封简短的邮件，说明下面这个函数是做什么的：\n{CODE}",
    # a maths question to translate, not to solve
    "Translate into Portuguese, and don't work it out: 'A tank fills in 6 hours and empties "
    "in 9 hours. How long does it take to fill with both pipes open?'",
    "请把这道题翻译成英文，不要解答：“甲乙两人同时从两地出发相向而行，3小时后相遇，求两地距离。”",
    # extraction or formatting over numbers, role-play with a technical persona
    "Extract the reference, the total and the due date from this bill, one per line: Bill "
    "2231 for Mrs Ode, total due £148.20 by 30 September; queries to 020 7946 0011.",
    "You are a senior product manager. Write a warm welcome message for new beta testers of "
    "our analytics dashboard.",
    "你是一名技术总监，请给即将入职的新员工写一段欢迎词。",
]


#: Plain-word puzzles with no cue word at all, that the shipped model still gets wrong (near 0.5,
#: leaning expression; see MODEL_CARD.md). Adding "who", "which", "at least"... as logic cues
#: fixed them but cost 1.2 points of held-out English balanced accuracy, so they stay here.
STILL_WRONG = [
    "Three sisters each like a different fruit: mango, pear or plum. Nora dislikes pears. The "
    "plum lover is the eldest. Ivy is the youngest and does not like mangoes. Who likes which?",
    "A bag holds only gloves, some left and some right, in the dark. What is the smallest "
    "number you must take out to be sure of a matching pair?",
]


@pytest.mark.parametrize("prompt", STILL_WRONG)
@pytest.mark.xfail(strict=True, reason="known miss: a plain-word puzzle without cue words")
def test_known_misses(prompt: str) -> None:
    assert classify(user(prompt)).task == "reasoning"


@pytest.mark.parametrize("prompt", REASONING)
def test_reasoning_kinds(prompt: str) -> None:
    c = classify(user(prompt))
    assert c.task == "reasoning", (prompt, c)


@pytest.mark.parametrize("prompt", EXPRESSION)
def test_expression_kinds(prompt: str) -> None:
    c = classify(user(prompt))
    assert c.task == "expression", (prompt, c)


def test_these_prompts_are_not_training_data() -> None:
    ours = PROJECT_DATA.read_text(encoding="utf-8")
    for prompt in REASONING + EXPRESSION + STILL_WRONG:
        assert prompt[:40] not in ours, prompt


@pytest.mark.parametrize(("first", "answer", "follow", "task"), [
    ("Prove that there are infinitely many primes.", "Assume finitely many, p1...pn; "
     "consider p1*...*pn + 1.", "ok", "reasoning"),
    ("Show that the square root of 2 is irrational.", "Suppose it equals a/b...", "continue",
     "reasoning"),
    ("证明：三角形的外角等于与它不相邻的两个内角之和。", "因为……", "继续", "reasoning"),
    ("Write a short poem about the sea at night.", "The tide hums low...", "ok", "expression"),
    ("帮我写一段生日祝福，送给我的奶奶。", "亲爱的奶奶……", "好的", "expression"),
    ("Prove that 17 is prime.", "Check divisors up to 4...", "why?", "reasoning"),
])
def test_short_follow_up_inherits_the_task(first: str, answer: str, follow: str,
                                           task: str) -> None:
    msgs = [{"role": "user", "content": first}, {"role": "assistant", "content": answer},
            {"role": "user", "content": follow}]
    c = classify(msgs)
    assert c.task == task, c
    alone = classify(user(first))
    assert (c.task, c.confidence) == (alone.task, alone.confidence)  # inherited as it was
    assert any("follow-up" in s for s in c.signals)
    assert classify(msgs, explain=False).signals == ()


def test_a_short_turn_with_its_own_task_is_not_a_follow_up() -> None:
    msgs = [{"role": "user", "content": "Prove that there are infinitely many primes."},
            {"role": "assistant", "content": "Suppose..."},
            {"role": "user", "content": "Now write it as a limerick."}]
    c = classify(msgs)
    assert not any("follow-up" in s for s in c.signals)
    assert c.task == "expression", c


@pytest.mark.parametrize("prompt", [
    "Explain what a black hole is.",
    "What is the difference between a virus and a bacterium?",
    "Tell me about the history of the printing press.",
    "什么是量子计算？",
    "介绍一下长城的历史。",
])
def test_knowledge_questions_are_not_confident(prompt: str) -> None:
    c = classify(user(prompt))
    assert c.confidence < 0.8, (prompt, c)
