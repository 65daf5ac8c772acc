"""router/streaming.py: the SSE response stops its relay when the client leaves, and the
relay's cleanup runs to its end either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from router.streaming import EventStreamResponse


def _relay(log: list[str], events: int, pause: float) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        try:
            for i in range(events):
                await asyncio.sleep(pause)
                yield f"data: {i}\n\n".encode()
            log.append("done")
        finally:
            log.append("cleanup")

    return gen()


async def test_streams_every_event_then_ends() -> None:
    log: list[str] = []
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    r = EventStreamResponse(_relay(log, 3, 0), headers={"x-request-id": "r1"})
    await r({"type": "http"}, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert [m["body"] for m in sent[1:]] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert log == ["done", "cleanup"]


async def test_a_disconnect_stops_the_relay_and_its_cleanup_runs() -> None:
    log: list[str] = []
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 3:  # the client leaves after two events
            gone.set()

    r = EventStreamResponse(_relay(log, 1000, 0.001), headers={})
    await asyncio.wait_for(r({"type": "http"}, receive, send), 5)
    assert 3 <= len(sent) < 10 and log == ["cleanup"]


async def test_cancelling_the_response_cancels_the_relay_and_propagates() -> None:
    log: list[str] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    r = EventStreamResponse(_relay(log, 1000, 0.001), headers={})
    task = asyncio.ensure_future(r({"type": "http"}, receive, send))
    await asyncio.sleep(0.02)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancellation was swallowed")
    assert log == ["cleanup"]


async def test_a_client_gone_before_the_relay_starts_gets_the_relay_cleaned_up() -> None:
    """The relay never ran (so its own ``finally`` cannot): ``on_unstarted`` does the cleanup."""
    log: list[str] = []
    gone = asyncio.Event()
    gone.set()  # the client has already left

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)  # the response start is slow to go out: the watcher fires first

    async def cleanup() -> None:
        log.append("on_unstarted")

    r = EventStreamResponse(_relay(log, 3, 0), headers={}, on_unstarted=cleanup)
    await asyncio.wait_for(r({"type": "http"}, receive, send), 5)
    assert log == ["on_unstarted"]


async def test_on_unstarted_is_not_called_once_the_relay_ran() -> None:
    log: list[str] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def cleanup() -> None:
        log.append("on_unstarted")

    r = EventStreamResponse(_relay(log, 2, 0), headers={}, on_unstarted=cleanup)
    await r({"type": "http"}, receive, send)
    assert log == ["done", "cleanup"]


async def test_a_disconnect_during_a_blocked_send_still_runs_the_relay_cleanup() -> None:
    """The client leaves while a body chunk's ``send`` is blocked: the relay sits at its
    ``yield``, so closing it (not garbage collection) must run its ``finally``."""
    log: list[str] = []
    sent: list[dict[str, Any]] = []
    blocked = asyncio.Event()
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await blocked.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 3:  # the second body message never goes out
            blocked.set()
            await never.wait()

    r = EventStreamResponse(_relay(log, 1000, 0), headers={})
    await asyncio.wait_for(r({"type": "http"}, receive, send), 5)
    assert len(sent) == 3 and log == ["cleanup"]
