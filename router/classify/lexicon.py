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
        "message", "note", "slack", "memo", "announcement", "newsletter", "release notes",
        "commit message", "post", "pitch", "invitation", "通知", "公告", "群消息", "朋友圈",
        "欢迎词", "邀请函", "感谢信", "推文",
    ),
    "translate cue": (
        "translate", "translation", "translated", "into english", "into chinese",
        "into french", "into spanish", "in english", "翻译", "译成", "译为", "英译中",
        "中译英", "英文", "英语", "法语", "日语", "into german", "into italian",
        "into portuguese", "into japanese", "德语", "意大利", "葡萄牙", "西班牙",
    ),
    "don't-solve cue": (
        "do not solve", "don ' t", "without solving", "do not answer", "no solution",
        "just translate", "only translate", "不用解", "不要解", "别解", "只翻译", "不需要",
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
        "原文", "这段", "以下文", "pull out", "list every", "reformat", "as a table",
        "bulleted list", "bullet list", "rate each", "tag each", "classify each", "整理成",
        "表格", "打分",
    ),
    "chat cue": (
        "chat", "conversation", "talk", "hello", "hi", "thanks", "thank you", "advice",
        "recommend", "suggest", "对话", "聊天", "闲聊", "你好", "谢谢", "建议", "推荐",
    ),
    "maths verb": (
        "calculate", "compute", "solve", "evaluate", "prove", "simplify", "derive",
        "determine", "find the", "计算", "求", "证明", "化简", "求解", "解方程", "推导", "算出",
        "show that", "prove that", "justify", "试证",
    ),
    "maths noun": (
        "equation", "integral", "derivative", "probability", "theorem", "remainder",
        "divisible", "prime", "triangle", "area", "perimeter", "radius", "angle", "sum",
        "product", "average", "ratio", "percent", "percentage", "interest", "speed", "cost",
        "price", "profit", "digits", "integer", "integers", "polynomial", "matrix", "vector",
        "sequence", "方程", "概率", "面积", "周长", "半径", "三角形", "等于", "数列", "不等式",
        "集合", "实数", "整数", "余数", "平方", "倍", "函数", "平均", "速度", "价格", "利润",
        "体积", "正方形", "长方形", "圆", "分数", "小数", "百分", "折", "元", "米", "千克",
        "infinitely", "odd", "even", "divisor", "multiple", "factorial", "median", "variance",
        "standard deviation", "mean", "expected value", "arrangements", "permutations",
        "combinations", "中位数", "众数", "方差", "期望", "排列数", "组合数", "倍数", "奇数",
        "偶数", "质数", "因数",
    ),
    "quantity question": (
        "how many", "how much", "how long", "how far", "how old", "what percent",
        "the value of", "多少", "几个", "几天", "几岁", "几只", "几本", "几人", "多少钱",
        "how many ways", "多少种", "几种",
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
        "assumption", "strengthen", "strengthens", "weaken", "weakens", "flaw", "inference",
        "the argument", "could be true", "must be false", "of the following", "true , false",
        "or uncertain", "follow from", "follows from", "can we conclude", "knight", "knights",
        "knave", "knaves", "削弱", "加强", "论证", "论点", "最能", "为真", "为假",
        "撒谎", "骑士", "哪项",
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
STRUCTURAL: tuple[str, ...] = ("number density", "long document", "pasted material",
                               "number density of pasted material")

#: Last turns that ask for nothing by themselves ("ok", "continue", "why?", "继续"): such a turn
#: inherits the task of the conversation before it. Compared after lower-casing, trimming spaces
#: and the punctuation at either end (see :func:`router.classify.model.is_follow_up`).
FOLLOW_UPS: frozenset[str] = frozenset({
    "ok", "okay", "k", "kk", "yes", "yeah", "yep", "no", "nope", "sure", "fine", "right",
    "continue", "go on", "keep going", "carry on", "go ahead", "proceed", "please continue",
    "continue please", "more", "and", "and then", "then", "next", "again", "one more", "why",
    "why not", "how", "how so", "really", "what", "what else", "anything else", "and why",
    "explain", "explain more", "elaborate", "more detail", "more details", "details", "go deeper",
    "thanks", "thank you", "thx", "ty", "hmm", "hm", "i see", "got it", "cool", "great",
    "nice", "good", "perfect", "awesome", "interesting", "wow", "lol", "?", "??", "...",
    "继续", "请继续", "接着", "接着说", "继续说", "继续写", "然后", "然后呢", "还有呢", "还有吗",
    "好", "好的", "好吧", "嗯", "嗯嗯", "哦", "行", "可以", "对", "是的", "不是", "不对", "为什么",
    "为啥", "怎么说", "详细点", "详细说说", "展开说说", "再详细一点", "谢谢", "多谢", "明白了",
    "懂了", "知道了", "下一步", "再来", "再来一个", "没懂", "不懂", "啥意思", "什么意思",
})
