"""The prompts ``router demo`` sends: English and Chinese, easy and hard, reasoning and writing.

The gateway decides each prompt's task and difficulty itself (the demo prints what it decided);
the comments say what a person would call them. ``stream``: sent as a stream, as chat UIs do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DemoPrompt:
    text: str
    stream: bool = False


PROMPTS: tuple[DemoPrompt, ...] = (
    DemoPrompt("Hello"),  # chat, easy
    DemoPrompt("你好，请用一句话介绍一下你自己。", stream=True),  # chat
    DemoPrompt("Write a short, warm thank-you note to a colleague who covered my shift "
               "last weekend."),  # writing
    DemoPrompt("请以“秋天的故乡”为题，写一段两百字左右的散文，语言要有画面感。",
               stream=True),  # writing
    DemoPrompt("What is 17 * 23?"),  # arithmetic, easy
    DemoPrompt("一个水池有甲、乙两个进水管和一个出水管。甲管单独注满需要6小时，乙管需要8小时，"
               "出水管单独放空需要12小时。三管同时打开，几小时能注满水池？请给出详细步骤。",
               stream=True),  # word problem
    DemoPrompt("Find all positive integers $n$ such that $n^2+2^n$ is a perfect square. Prove "
               "your answer is complete."),  # proof, hard
    DemoPrompt("Given a weighted directed graph with negative edges but no negative cycles, "
               "compute all-pairs shortest paths in O(V^2 log V + VE) and prove correctness of "
               "the reweighting.", stream=True),  # algorithms, hard
    DemoPrompt("已知数列 $\\{a_n\\}$ 满足 $a_1=1$，$a_{n+1}=2a_n+n$，求通项公式并证明 "
               "$\\sum_{k=1}^n \\frac{1}{a_k+k} < 2$。"),  # maths, hard
    DemoPrompt("Summarise in one sentence: The gateway counts each request's tokens, sorts the "
               "task, prices it on every model in the catalogue and sends it to the cheapest one "
               "that can handle it.", stream=True),  # summary
)
