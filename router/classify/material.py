"""Tell the instruction from the material it is about.

"Write a friendly email about this bug: ```<code>```" asks for writing; "Translate into German:
'If x + 3 = 7, what is x?'" asks for a translation. What the user pasted or quoted says little
about the task, so it is featurised apart from the instruction (its own weights, learned like
the others): fenced code blocks (an unclosed fence runs to the end) and quoted passages (double
quotes, Chinese quotes, or single quotes that are not apostrophes) of a dozen characters or more.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_FENCE = re.compile(r"(```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z))", re.S)
_DOUBLE = re.compile(r'("[^"\n]{12,}?")')
_CHINESE = re.compile(r"(“[^”]{10,}?”|「[^」]{10,}?」|『[^』]{10,}?』)")
# A single quote opens only after a space, a line break, a colon or a bracket (an apostrophe
# follows a letter) and closes only where no word character follows.
_SINGLE = re.compile(r"('(?<![^\s:：(（\[]')(?=\S)[^'\n]{12,}?(?<=\S)'(?!\w))")


class Split(NamedTuple):
    instruction: str  # the text with the material taken out (a line break where each was)
    material: str  # the pasted or quoted passages, one per line ("" when there is none)


def split(text: str) -> Split:
    """The instruction and the material of ``text``.

    On the request path: each pattern runs only when a one-character ``in`` test finds its
    opening character, so a prompt without material costs a handful of ``in`` tests. (Every
    pattern starts with its quote character, which lets the regex engine skip ahead to it:
    English text is full of apostrophes.)
    """
    parts: list[str] = []
    if "```" in text or "~~~" in text:
        text = _cut(_FENCE, text, parts)
    if '"' in text:
        text = _cut(_DOUBLE, text, parts)
    if "“" in text or "「" in text or "『" in text:
        text = _cut(_CHINESE, text, parts)
    if "'" in text:
        text = _cut(_SINGLE, text, parts)
    return Split(text, "\n".join(parts))


def _cut(pattern: re.Pattern[str], text: str, parts: list[str]) -> str:
    """Move what ``pattern`` (one capturing group) matches from ``text`` to ``parts``."""
    pieces = pattern.split(text)
    if len(pieces) == 1:
        return text
    parts += pieces[1::2]
    return "\n".join(pieces[0::2])
