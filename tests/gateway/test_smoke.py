from __future__ import annotations

import openai


def test_chat_roundtrip(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="gpt-4o-mini",
                                          messages=[{"role": "user", "content": "hello"}])
    assert resp.choices[0].message.content
    assert resp.usage is not None and resp.usage.prompt_tokens > 0


def test_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="auto", stream=True,
                                            messages=[{"role": "user", "content": "hello"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("This is a fake reply")
