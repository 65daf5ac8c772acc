"""Pull the text to classify out of OpenAI chat messages, whatever shape they arrive in.

Nothing here raises: unknown roles, missing keys, ``None`` or integer content, lists of parts
with images, audio or files, assistant turns that only carry ``tool_calls``... are all accepted,
and what could not be read is simply not text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

CONTEXT_CHARS = 600  # how much of the system prompt and of the previous user turn is context
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_MEDIA = {"image_url": "image", "image": "image", "input_image": "image",
          "input_audio": "audio", "audio": "audio", "file": "file", "input_file": "file"}


class Extracted(NamedTuple):  # a tuple: built on every request, cheaper than a dataclass
    main: str  # the last user turn (or the best stand-in)
    context: str  # system prompt head and previous user turn tail
    notes: tuple[str, ...]  # things seen that are not text: "image input", "tool results"...


def content_text(content: Any, notes: list[str] | None = None) -> str:
    """The text of one message's ``content``: a string, ``None``, or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (int, float)) and not isinstance(content, bool):
        return str(content)
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, (list, tuple)):
        return ""
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            if not isinstance(kind, str | None):  # e.g. {"type": {}}: not text, and unhashable
                continue
            text = part.get("text")
            if isinstance(text, str) and (kind in _TEXT_PARTS or kind is None):
                texts.append(text)
            elif notes is not None and isinstance(kind, str) and kind in _MEDIA:
                note = f"{_MEDIA[kind]} input"
                if note not in notes:
                    notes.append(note)
    return "\n".join(texts)


def extract(messages: Any) -> Extracted:
    """Main text, context and notes of a chat request (``messages`` may be anything)."""
    if type(messages) is list and len(messages) == 1:  # the commonest request: one user turn
        msg = messages[0]
        if type(msg) is dict and msg.get("role") == "user" and not (
                msg.get("tool_calls") or msg.get("function_call")):
            content = msg.get("content")
            if type(content) is str:
                return Extracted(content, "", ())
    if isinstance(messages, str):
        return Extracted(messages, "", ())
    if isinstance(messages, Mapping):
        messages = [messages]
    if not isinstance(messages, (list, tuple)):
        return Extracted("", "", ())
    notes: list[str] = []
    system: list[str] = []  # texts of system/developer turns that have any
    users: list[str] = []  # texts of user turns that have any, in order
    last_blank = False  # whether the last user turn has no text
    for msg in messages:
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role")
        if (msg.get("tool_calls") or msg.get("function_call")) and "tool calls" not in notes:
            notes.append("tool calls")
        if role in ("tool", "function"):
            if "tool results" not in notes:
                notes.append("tool results")
            continue
        if role in ("system", "developer"):
            text = content_text(msg.get("content"))
            if text.strip():
                system.append(text)
        elif role == "user" or role is None:  # other roles' text is not used
            text = content_text(msg.get("content"), notes if role == "user" else None)
            last_blank = not text.strip()
            if not last_blank:
                users.append(text)
    main = ""
    previous = ""
    if users:
        main = users[-1]
        if last_blank:
            notes.append("last user turn has no text")
        if len(users) > 1:
            previous = users[-2][-CONTEXT_CHARS:]
    sys_text = "\n".join(system)
    if not main and sys_text:
        main, sys_text = sys_text, ""
    context = "\n".join(t for t in (sys_text[:CONTEXT_CHARS], previous) if t)
    return Extracted(main, context, tuple(notes))
