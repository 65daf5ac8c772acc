"""``router demo``: the gateway, on the default catalogue and policy, in front of a simulated
upstream; the demo's prompts through it with the openai SDK; what happened, from the ledger.

Everything runs in this process on loopback: the simulated upstream (aiohttp), the real gateway
app served by uvicorn, and the ``openai`` SDK as a client. Per request the table shows what the
gateway decided (its ``x-router-*`` headers) and what the ledger charged; the totals are the
ledger's, and the budget left is the budget store's for the demo key.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from router.demo.prompts import PROMPTS, DemoPrompt
from router.demo.setup import (
    DEMO_KEY,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    DemoConfig,
    base_config,
    tokenizers,
    write_demo_config,
)
from router.demo.upstream import MARK, SIMULATED_HEADER

Send = Callable[[dict[str, Any]], Any]


@dataclass(slots=True)
class Sent:
    """One demo request as the client saw it, and its ledger row's figures."""

    prompt: DemoPrompt
    request_id: str
    model: str
    task: str
    band: str
    reference_model: str
    simulated: bool
    cost_micro: int = 0
    reference_micro: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def usd(micro: int) -> str:
    return f"${micro / 1_000_000:.6f}"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    """``text`` in ``width`` terminal cells (CJK counts two): cut with an ellipsis, padded."""
    text = " ".join(text.split())
    if _width(text) > width:
        out, used = "", 0
        for ch in text:
            if used + _width(ch) > width - 1:
                break
            out += ch
            used += _width(ch)
        text = out + "…"
    return text + " " * max(0, width - _width(text))


class MarkSimulated:
    """ASGI wrapper: every response of the demo gateway says ``x-router-simulated: true``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                   (SIMULATED_HEADER.encode(), b"true")]}
            await send(message)

        await self.app(scope, receive, marked)


def bind(port: int, host: str = "127.0.0.1") -> socket.socket:
    from router.commands.serve import bind_socket

    return bind_socket(host, port)


async def _send_one(client: Any, prompt: DemoPrompt) -> Sent:
    kwargs: dict[str, Any] = {"model": "auto",
                              "messages": [{"role": "user", "content": prompt.text}]}
    if prompt.stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    t0 = time.perf_counter()
    raw = await client.chat.completions.with_raw_response.create(**kwargs)
    h = raw.headers
    parsed = raw.parse()
    if prompt.stream:
        text = ""
        async for chunk in parsed:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    else:
        text = parsed.choices[0].message.content or ""
    return Sent(prompt, h.get("x-request-id", ""), h.get("x-router-model", "?"),
                h.get("x-router-task", "?"), h.get("x-router-difficulty-band", "-"),
                h.get("x-router-reference-model", "-"),
                text.startswith(MARK) and h.get(SIMULATED_HEADER) == "true",
                seconds=time.perf_counter() - t0)


async def _ledger(state: Any, sent: list[Sent], since: float) -> bool:
    """Fill each request's cost from its ledger row (a stream's row lands as it ends); False
    when a row did not arrive within 30 s."""
    want = {s.request_id: s for s in sent}
    deadline = time.monotonic() + 30
    while True:
        rows = {r.request_id: r for r in await state.store.ledger_rows(since - 5, time.time() + 5)}
        if all(i in rows for i in want) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for rid, s in want.items():
        row = rows.get(rid)
        if row is not None:
            s.cost_micro, s.reference_micro = row.actual_micro, row.reference_micro
            s.prompt_tokens, s.completion_tokens = row.prompt_tokens, row.completion_tokens
    return all(rid in rows for rid in want)


def _table(sent: list[Sent], out: TextIO) -> None:
    cols = [("#", 2), ("prompt", 28), ("task", 10), ("difficulty", 10), ("model", 17),
            ("tokens in/out", 13), ("time", 5), ("cost", 9), ("on reference", 12)]
    print("  ".join(_fit(name, w) if i < 6 else name.rjust(w)
                    for i, (name, w) in enumerate(cols)), file=out)
    for i, s in enumerate(sent, 1):
        mode = " (stream)" if s.prompt.stream else ""
        cells = [str(i).rjust(2), _fit(s.prompt.text, 28), _fit(s.task, 10),
                 _fit(s.band, 10), _fit(s.model, 17),
                 _fit(f"{s.prompt_tokens}/{s.completion_tokens}", 13),
                 f"{s.seconds:4.1f}s", usd(s.cost_micro).rjust(9),
                 usd(s.reference_micro).rjust(12)]
        print("  ".join(cells) + mode, file=out)


async def _budget_left(state: Any, cfg: Any) -> tuple[int, int]:
    from router.auth import caller_of

    (spec,) = caller_of(cfg.auth.keys[0]).budgets
    (status,) = await state.store.budget_status([spec])
    return spec.limit_micro, status.remaining_micro


async def _send_all(base_url: str, state: Any, out: TextIO) -> list[Sent] | None:
    """The demo's prompts, all at once; None when a ledger row did not arrive."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=DEMO_KEY, max_retries=0,
                                timeout=120)
    started = time.time()
    print(f"Sending {len(PROMPTS)} requests with model=auto through the gateway with the "
          "openai SDK, at once, as users would...\n", file=out, flush=True)
    try:
        sent = list(await asyncio.gather(*(_send_one(client, p) for p in PROMPTS)))
    finally:
        await client.close()
    return sent if await _ledger(state, sent, started) else None


async def _totals(sent: list[Sent], state: Any, cfg: Any, out: TextIO) -> None:
    spent = sum(s.cost_micro for s in sent)
    reference = sum(s.reference_micro for s in sent)
    limit, left = await _budget_left(state, cfg)
    ref_model = sent[0].reference_model if sent else "-"
    saved = reference - spent
    share = f" ({saved / reference:.1%})" if reference else ""
    print(f"\nTotal over {len(sent)} requests: spent {usd(spent)}; the same requests on "
          f"{ref_model} (the reference model): {usd(reference)}; saved {usd(saved)}{share}.",
          file=out)
    print(f"Budget of key 'demo': {usd(limit)} in total, {usd(left)} left.", file=out)


def _try_it(base_url: str, out: TextIO) -> None:
    print("\nThe gateway keeps running (Ctrl-C stops it). Try it from another shell:\n"
          f"  export OPENAI_BASE_URL={base_url}/v1 OPENAI_API_KEY={DEMO_KEY}\n"
          "  python -c \"from openai import OpenAI; print(OpenAI().chat.completions"
          ".create(model='auto', messages=[{'role':'user','content':'Hello'}])"
          ".choices[0].message.content)\"\n"
          f"  Metrics: {base_url}/metrics\n"
          f"  Models:  curl -H 'Authorization: Bearer {DEMO_KEY}' {base_url}/v1/models",
          file=out, flush=True)


async def demo(directory: Path, port: int | None, once: bool, speed: float,
               out: TextIO = sys.stdout) -> int:
    import openai
    import uvicorn

    from router.app import create_app
    from router.config import ConfigError

    try:
        base = base_config()
    except (ConfigError, OSError) as exc:
        print(f"router demo: cannot read the default config: {exc}", file=sys.stderr)
        return 2
    os.environ[UPSTREAM_KEY_ENV] = UPSTREAM_KEY  # what the gateway sends the simulator
    try:
        sock = bind(8000 if port is None else port)
    except OSError as exc:
        if port is not None:
            print(f"router demo: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} "
                  "(choose another with --port)", file=sys.stderr)
            return 1
        sock = bind(0)  # 8000 is taken (a `router serve`?): any free port
        print(f"router demo: port 8000 is in use; the demo gateway takes port "
              f"{sock.getsockname()[1]}.", file=sys.stderr)
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    from router.demo import upstream

    runner, upstream_url, sim = await upstream.start(tokenizers(base), speed)
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    try:
        demo_cfg: DemoConfig = write_demo_config(base, directory, upstream_url, port)
        gateway = create_app(config_path=str(demo_cfg.path))
        server = uvicorn.Server(uvicorn.Config(
            MarkSimulated(gateway), log_level="warning", access_log=False, lifespan="on",
            timeout_graceful_shutdown=5))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                print("router demo: the gateway did not start (see the log above)",
                      file=sys.stderr)
                return 3
            await asyncio.sleep(0.02)
        state = gateway.current()
        print(f"federated-router demo: the gateway at {base_url} with the default catalogue "
              f"({len(demo_cfg.config.models)} models) and policy of {demo_cfg.source};\n"
              "every model is "
              f"simulated on this machine ({upstream_url}): no keys, no network, nothing "
              "billed.\nAnswers start with [simulated] and carry the header "
              f"{SIMULATED_HEADER}: true.\n", file=out)
        try:
            sent = await _send_all(base_url, state, out)
        except openai.APIError as exc:  # the demo's own gateway refused: say so, no traceback
            print(f"router demo: a request failed: {exc}", file=sys.stderr)
            return 1
        if sent is None:
            print("router demo: a request is missing from the ledger", file=sys.stderr)
            return 1
        _table(sent, out)
        await _totals(sent, state, demo_cfg.config, out)
        print(f"The simulator answered {sim.requests} upstream calls; no provider was called.",
              file=out)
        if not all(s.simulated for s in sent):
            print("router demo: an answer was not marked as simulated", file=sys.stderr)
            return 1
        print(f"\nThe ledger: router spend --config {demo_cfg.path} --period total "
              "--group-by model", file=out)
        if once:
            server.should_exit = True
        else:
            _try_it(base_url, out)
        await serving
        return 0
    finally:
        if server is not None and serving is not None and not serving.done():
            server.should_exit = True  # an error above: stop the gateway cleanly
            await asyncio.wait({serving})
        sock.close()
        await runner.cleanup()
