"""Explicit, hand-made signals: cue phrases grouped into language-neutral concepts.

Each concept becomes one dense feature (``log1p`` of how many of its cues the text contains), so
what the model learns about "translate" from English prompts also applies to 翻译 in Chinese ones.
Phrases are tokenised like any text (English words, single CJK characters, single symbols) and
must be one to three tokens long. The names are shown to people as signals: keep them readable.
"""

from __future__ import annotations

CONCEPTS: dict[str, tuple[str, ...]] = {
    "writing verb": (
        "write", "compose", "draft", "craft", "pen", "写", "撰写", "创作", "写一篇", "写一首",
        "写一封", "写一段", "起草", "编写一", "编一个", "写作",
    ),
    "genre word": (
        "story", "poem", "essay", "letter", "email", "blog", "article", "speech", "slogan",
        "tweet", "lyrics", "song", "novel", "haiku", "limerick", "caption", "headline",
        "narrative", "dialogue", "monologue", "screenplay", "review", "toast", "eulogy",
        "tagline", "advertisement", "ad", "bio", "cover letter", "故事", "诗", "诗歌", "文章",
        "信", "邮件", "演讲", "文案", "广告", "剧本", "作文", "歌词", "小说", "散文", "对联",
        "祝福", "标语", "致辞", "贺词", "口号", "童话", "寓言", "日记", "游记", "书评", "影评",
    ),
    "translate cue": (
        "translate", "translation", "translated", "into english", "into chinese",
        "into french", "into spanish", "in english", "翻译", "译成", "译为", "英译中",
        "中译英", "英文", "英语", "法语", "日语",
    ),
    "summarise cue": (
        "summarize", "summarise", "summary", "summarizing", "tl ; dr", "key points",
        "main idea", "main points", "in one sentence", "概括", "总结", "摘要", "要点", "归纳",
        "主旨", "大意", "提炼", "一句话",
    ),
    "rewrite cue": (
        "rewrite", "rephrase", "paraphrase", "polish", "proofread", "reword", "more formal",
        "more concise", "more polite", "tone", "grammar", "improve the", "改写", "重写", "润色",
        "修改", "改成", "改为", "简洁", "通顺", "扩写", "续写", "缩写", "仿写", "语气", "措辞",
    ),
    "role-play cue": (
        "act as", "pretend", "imagine you", "you are a", "roleplay", "role", "character",
        "i want you", "persona", "扮演", "充当", "假设你", "你是一", "角色", "希望你", "担任",
    ),
    "extraction cue": (
        "extract", "list all", "identify the", "from the text", "from the passage",
        "based on the", "given text", "the following text", "提取", "找出", "列出", "根据以",
        "原文", "这段", "以下文",
    ),
    "chat cue": (
        "chat", "conversation", "talk", "hello", "hi", "thanks", "thank you", "advice",
        "recommend", "suggest", "对话", "聊天", "闲聊", "你好", "谢谢", "建议", "推荐",
    ),
    "maths verb": (
        "calculate", "compute", "solve", "evaluate", "prove", "simplify", "derive",
        "determine", "find the", "计算", "求", "证明", "化简", "求解", "解方程", "推导", "算出",
    ),
    "maths noun": (
        "equation", "integral", "derivative", "probability", "theorem", "remainder",
        "divisible", "prime", "triangle", "area", "perimeter", "radius", "angle", "sum",
        "product", "average", "ratio", "percent", "percentage", "interest", "speed", "cost",
        "price", "profit", "digits", "integer", "integers", "polynomial", "matrix", "vector",
        "sequence", "方程", "概率", "面积", "周长", "半径", "三角形", "等于", "数列", "不等式",
        "集合", "实数", "整数", "余数", "平方", "倍", "函数", "平均", "速度", "价格", "利润",
        "体积", "正方形", "长方形", "圆", "分数", "小数", "百分", "折", "元", "米", "千克",
    ),
    "quantity question": (
        "how many", "how much", "how long", "how far", "how old", "what percent",
        "the value of", "多少", "几个", "几天", "几岁", "几只", "几本", "几人", "多少钱",
    ),
    "logic cue": (
        "puzzle", "riddle", "logic", "logical", "deduce", "infer", "conclude", "liar", "lies",
        "truth", "tells the truth", "always lies", "if and only", "valid", "invalid",
        "premise", "premises", "therefore", "must be", "cannot be", "neither", "exactly one",
        "left of", "right of", "next to", "older than", "taller than", "shorter than",
        "younger than", "which one", "推理", "逻辑", "真话", "假话", "说谎",
        "谎话", "推断", "一定", "必然", "如果", "那么", "谁", "哪个", "哪一", "左边", "右边",
        "前提", "结论", "矛盾", "只有", "成立", "可能", "排在", "第几", "arranged",
        "fixed order", "consistent", "swap", "swaps", "trade", "trades", "switch",
        "at the end", "at the start", "from the left", "from the right", "between what",
        "交换", "顺序", "排列", "从左", "从右", "最后", "一开始", "if all", "are all",
        "does it follow", "it follows", "must be true", "syllogism", "三段论", "能推出", "推出",
    ),
    "ordering task": (
        "sort", "sorted", "alphabetically", "alphabetical", "ascending", "descending", "rank",
        "排序", "升序", "降序", "从小到", "从大到", "字母顺",
    ),
    "code word": (
        "code", "python", "javascript", "java", "c + +", "sql", "function", "algorithm",
        "bug", "debug", "implement", "compile", "error", "array", "string", "regex", "api",
        "class", "method", "variable", "loop", "recursion", "complexity", "program",
        "programming", "html", "css", "json", "database", "query", "linux", "git",
        "docker", "bash", "shell", "powershell", "c #", "typescript", "rust", "php",
        "kotlin", "golang", "perl", "代码", "编程", "程序", "算法", "变量", "数组", "实现",
        "调试", "报错",
        "接口", "数据库", "字符串", "循环", "递归", "复杂度",
    ),
    "code syntax": (
        "def", "return", "import", "# include", "= >", "= =", "! =", "- >", "( )", "{",
        "}", ";", "print", "console", "public", "void", "int", "const", "let", "var",
        "self", "null", "none", "elif", "lambda", "std", ": :", "> > >", "true", "false",
        "not (", "( true", "( false", "true )", "false )",
    ),
    "maths notation": (
        "\\ sqrt", "\\ cdot", "\\ times", "\\ le", "\\ ge", "\\ pi", "\\ left",
        "\\ right", "^", "√", "π", "≤", "≥", "≠", "∠", "△", "°", "∫", "∑", "sin", "cos",
        "tan", "log", "ln", "0 +", "0 -", "0 *", "0 /", "0 =", "= 0", "+ 0", "* 0",
        "x =", "y =",
    ),
    "code fence": ("` ` `", "~ ~ ~"),
    "LaTeX": ("\\ frac", "\\ (", "\\ [", "$", "^ {", "_ {", "\\ begin", "\\ sum", "\\ int",
              "\\ mathbb", "\\ overline", "\\ angle"),
    "explain cue": (
        "explain", "why", "describe", "what is", "how does", "解释", "为什么", "什么是", "介绍",
        "说明", "描述",
    ),
    "multiple choice": (
        "( a )", "( b )", "options", "choose", "a .", "b .", "选项", "下列", "以下哪", "选择",
    ),
}

#: Dense features computed from the text's shape rather than from cue phrases.
STRUCTURAL: tuple[str, ...] = ("number density", "long document")
