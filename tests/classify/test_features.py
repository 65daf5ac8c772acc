"""The featurizer, the cue lexicon, message extraction and the task overrides."""

from __future__ import annotations

import numpy as np
import pytest

from router.classify.features import MAX_CHARS, Featurizer, truncate
from router.classify.lexicon import CONCEPTS
from router.classify.messages import extract
from router.classify.overrides import override_task, parse_task


@pytest.fixture(scope="module")
def feat() -> Featurizer:
    return Featurizer(18)


def test_ascii_fast_path_matches_utf16_path(feat: Featurizer) -> None:
    for text in ["Hello, World! x = 42; def f(): return 3.14", "  lead and trail  ", "A", "!!"]:
        a = feat._chars(text)
        b = feat._chars_utf16(text)
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(np.asarray(x, dtype=np.uint32), np.asarray(y, dtype=np.uint32))


def test_tokens_words_cjk_symbols(feat: Featurizer) -> None:
    assert feat.token_texts("Hello, world 42!") == ["Hello", ",", "world", "42", "!"]
    assert feat.token_texts("计算x=1") == ["计", "算", "x", "=", "1"]
    f = feat.featurize("Hello, world 42!")
    assert f.n == 5 and len(f.keys) == 5 + 4 + 3


def test_case_width_and_numbers_are_folded(feat: Featurizer) -> None:
    a, b = feat.featurize("WRITE 123 Ｐoem，"), feat.featurize("write 9 poem,")
    assert np.array_equal(a.keys, b.keys)


def test_every_cue_is_in_the_table(feat: Featurizer) -> None:
    assert feat.dropped_cues == []
    for concept, phrases in CONCEPTS.items():
        for phrase in phrases:
            matches = feat.cue_matches(feat.featurize(phrase))
            assert any(c == concept for c, _ in matches) or any(
                phrase in other for other in CONCEPTS.values() if other is not phrases), phrase


def test_cue_counts_whole_text_and_ends(feat: Featurizer) -> None:
    text = "write " * 30 + "a middle poem " + "zebra " * 30
    f = feat.featurize(text)
    values = dict(zip(feat.concepts, f.explicit.tolist(), strict=True))
    assert values["writing verb"] == pytest.approx(np.log1p(30))
    assert values["writing verb (at either end)"] == pytest.approx(np.log1p(24))
    assert values["genre word"] == pytest.approx(np.log1p(1))
    assert values["genre word (at either end)"] == 0.0


def test_truncate_keeps_head_and_tail() -> None:
    text = "HEAD " + "x" * 10_000 + " TAIL"
    t = truncate(text)
    assert len(t) == MAX_CHARS and t.startswith("HEAD") and t.endswith("TAIL")
    assert truncate("short") == "short"


def test_empty_text(feat: Featurizer) -> None:
    f = feat.featurize("")
    assert f.n == 0 and len(f.idx) == 0 and not f.explicit.any()


def test_extract_picks_last_user_turn_and_context() -> None:
    ex = extract([
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"},
                                     {"type": "image_url", "image_url": {"url": "u"}}]},
    ])
    assert ex.main == "second"
    assert "SYS" in ex.context and "first" in ex.context
    assert "image input" in ex.notes


def test_extract_falls_back_to_system_prompt() -> None:
    assert extract([{"role": "system", "content": "Only a system prompt"}]).main == \
        "Only a system prompt"


@pytest.mark.parametrize(("model", "headers", "metadata", "want"), [
    ("auto:reasoning", None, None, "reasoning"),
    ("AUTO:Expression", {"x-router-task": "reasoning"}, None, "expression"),
    ("auto", {"X-Router-Task": " Reasoning "}, None, "reasoning"),
    ("gpt-4o", {}, {"router_task": "expression"}, "expression"),
    ("gpt-4o", {"x-router-task": ""}, {"task": "reasoning"}, "reasoning"),
    ("gpt-4o", None, None, None),
    (None, None, "not a mapping", None),
])
def test_overrides(model: object, headers: dict[str, str] | None, metadata: object,
                   want: str | None) -> None:
    assert override_task(model, headers, metadata) == want


@pytest.mark.parametrize("bad", ["auto:poetry", "auto:"])
def test_bad_virtual_model(bad: str) -> None:
    with pytest.raises(ValueError, match="task must be"):
        override_task(bad)


def test_bad_header_and_metadata() -> None:
    with pytest.raises(ValueError):
        override_task("auto", {"x-router-task": "maths"})
    with pytest.raises(ValueError):
        override_task("auto", None, {"router_task": 3})
    assert parse_task("EXPRESSION") == "expression"


@pytest.mark.parametrize(("text", "instruction", "material"), [
    ("Write a haiku about this:\n```py\nx = 1\n```\nthanks", "Write a haiku about this:\n\n\nthanks",
     "```py\nx = 1\n```"),
    ("Explain:\n```\nunclosed fence runs to the end", "Explain:\n\n",
     "```\nunclosed fence runs to the end"),
    ("Translate into German: 'If x + 3 = 7, what is x?' Do not solve it.",
     "Translate into German: \n Do not solve it.", "'If x + 3 = 7, what is x?'"),
    ("I don't think it's the dog's bone, isn't it?", "I don't think it's the dog's bone, isn't it?",
     ""),
    ('He said "a quoted passage of some length" and left.', "He said \n and left.",
     '"a quoted passage of some length"'),
    ('Short "quote" stays.', 'Short "quote" stays.', ""),
    ("把这句话翻译成英文：“今天天气很好，我们去公园散步吧。”", "把这句话翻译成英文：\n",
     "“今天天气很好，我们去公园散步吧。”"),
    ("甲说：“乙在说谎。”", "甲说：“乙在说谎。”", ""),  # a short statement is the puzzle itself
])
def test_material_split(text: str, instruction: str, material: str) -> None:
    from router.classify.material import split

    assert split(text) == (instruction, material)


def test_material_has_its_own_features(feat: Featurizer) -> None:
    plain = feat.featurize("Write a friendly email about this bug")
    code = feat.featurize("Write a friendly email about this bug:\n```py\ndef f(): return 1\n```")
    assert code.text.startswith("Write a friendly email") and "def f" in code.material
    assert np.array_equal(code.idx[:code.m], feat.featurize(code.text).idx[:code.m])
    assert len(code.idx) > code.mh and len(plain.idx) == plain.mh
    values = dict(zip(feat.concepts, code.explicit.tolist(), strict=True))
    assert values["code syntax (in pasted material)"] > 0 and values["code syntax"] == 0
    assert 0 < values["pasted material"] < 1


@pytest.mark.parametrize(("text", "follow_up"), [
    ("ok", True), ("OK!", True), ("  continue ", True), ("Why?", True), ("继续", True),
    ("好的。", True), ("?", True), ("go on", True), ("thanks", True),
    ("write it as a poem", False), ("why is the sky blue?", False), ("翻译成英文", False),
    ("ok " * 20, False),
])
def test_follow_ups(text: str, follow_up: bool) -> None:
    from router.classify.model import is_follow_up

    assert is_follow_up(text) is follow_up
