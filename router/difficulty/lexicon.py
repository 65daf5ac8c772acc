"""Cue phrases that say *why* a prompt is hard or easy, grouped into language-neutral concepts.

Each concept is one feature (``log1p`` of how many of its cues the prompt contains), so a weight
learnt from English outcomes also applies to the Chinese cues of the same concept. Phrases are
tokenised like any text (English words, single CJK characters, single symbols: see
:mod:`router.classify.features`) and are one to three tokens long. The names are shown to people
in explanations ("constraints +0.21"): keep them readable.

What says *which task* a prompt is (write, translate, summarise, chat) is the classifier's
business and is left out here: the outcome data this estimate is fitted on has almost no such
prompts, so weights for them would only learn the quirks of a few benchmark rows.
"""

from __future__ import annotations

CONCEPTS: dict[str, tuple[str, ...]] = {
    "multi-step wording": (
        "then", "after", "before", "each", "per", "every", "remaining", "rest", "left over",
        "total", "altogether", "in all", "twice", "half", "times as", "more than", "less than",
        "fewer than", "instead", "difference", "然后", "之后", "以后", "每", "剩下", "剩余",
        "一共", "总共", "比", "倍", "又", "再",
    ),
    "constraints": (
        "at least", "at most", "exactly", "only", "must", "no more than", "no less than",
        "without", "unless", "such that", "provided that", "subject to", "satisfy",
        "satisfies", "至少", "至多", "最多", "最少", "恰好", "只能", "必须", "满足", "使得",
    ),
    "negation": (
        "not", "except", "false", "incorrect", "least", "never", "none", "neither", "nor",
        "don't", "doesn't", "isn't", "can't", "cannot", "不", "不是", "没有", "错误", "除外",
        "除了",
    ),
    "proof or derivation": (
        "prove", "proof", "show that", "derive", "justify", "deduce", "证明", "推导", "求证",
    ),
    "advanced maths": (
        "integral", "derivative", "matrix", "eigenvalue", "limit", "polynomial", "modulo",
        "prime", "probability", "permutations", "combinations", "sequence", "logarithm",
        "log", "sin", "cos", "tan", "complex", "vector", "real numbers", "function",
        "inequality", "theorem", "积分", "导数", "矩阵", "极限", "多项式", "概率",
        "对数", "数列", "函数", "不等式", "复数", "向量", "定理",
    ),
    "logic puzzle": (
        "clue", "clues", "puzzle", "riddle", "liar", "lies", "truth", "house", "houses",
        "directly left", "directly right", "next to", "arrangement", "arranged", "推理",
        "谜题", "真话", "假话", "说谎", "逻辑",
    ),
    "code": (
        "function", "def", "return", "python", "code", "algorithm", "implement", "array",
        "string", "list", "class", "complexity", "recursion", "sql", "代码", "算法", "实现",
        "编程", "程序",
    ),
    "science": (
        "molecule", "reaction", "protein", "quantum", "electron", "enzyme", "gene", "cell",
        "compound", "acid", "energy", "velocity", "force", "mass", "organic", "spectrum",
        "化学", "分子", "蛋白", "基因", "量子", "细胞", "反应", "能量",
    ),
    "professional domain": (
        "plaintiff", "defendant", "court", "statute", "contract", "liability", "patient",
        "diagnosis", "symptoms", "clinical", "tax", "accounting", "securities", "法院",
        "合同", "患者", "诊断", "税", "会计",
    ),
    "knowledge lookup": (
        "who", "which", "when", "where", "what year", "named", "called", "capital of", "谁",
        "哪", "何时", "哪里", "哪一年",
    ),
}

#: Structural features, after the concepts (names as shown in explanations).
STRUCTURAL: tuple[str, ...] = (
    "length",  # log1p(tokens)
    "quantities",  # log1p(number tokens)
    "number density",  # share of tokens that are numbers
    "questions",  # log1p(question marks)
    "sentences",  # log1p(sentence ends)
    "lines",  # log1p(line breaks)
    "answer options",  # lines that start "A." / "(B)" / "C)" ...
    "formulas",  # log1p(maths symbols and LaTeX commands)
)
