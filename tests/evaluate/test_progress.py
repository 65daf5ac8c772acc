"""Long work shows a bar on a terminal and nothing when piped."""

from __future__ import annotations

import io

from router.evaluate.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal() -> None:
    out = Tty()
    with Progress("replay", 4, stream=out) as p:
        for _ in range(4):
            p.advance()
    text = out.getvalue()
    assert text.startswith("\rreplay [") and "100% 4/4" in text and text.endswith("\n")


def test_silent_when_piped() -> None:
    out = io.StringIO()
    with Progress("replay", 4, stream=out) as p:
        p.advance(4)
    assert out.getvalue() == ""
