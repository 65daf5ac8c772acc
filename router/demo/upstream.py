"""The demo's simulated upstream: an OpenAI-compatible server on loopback that answers for every
catalogue model without calling one. Used only by ``router demo``; nothing else imports it.

Each answer is marked: its text starts with ``[simulated]``, its ``system_fingerprint`` is
``simulated``, and the response has the header ``x-router-simulated: true``. What is realistic:

* latency per model (time to first token, then tokens per second; thinking models spend their
  hidden reasoning tokens before the first visible one), scaled by ``speed``;
* SSE streaming as OpenAI sends it (role chunk, content chunks, finish chunk, the usage chunk
  when ``stream_options.include_usage`` asks for it, ``[DONE]``);
* honest usage: prompt tokens counted with the model's tokenizer as the gateway counts them,
  completion tokens the text actually sent (plus reasoning tokens for thinking models, reported in
  ``completion_tokens_details`` as OpenAI does).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from router.tokens import count_chat_tokens, count_embedding_input, count_text_tokens

SIMULATED_HEADER = "x-router-simulated"
MARK = "[simulated]"


@dataclass(frozen=True, slots=True)
class Profile:
    """How fast a model answers: seconds to the first token, visible tokens per second, and the
    hidden reasoning tokens per visible one (thinking models)."""

    ttft_s: float
    tokens_per_s: float
    thinking: float = 0.0


#: By upstream model id (prefix match, longest first); typical figures of the public APIs.
PROFILES: Mapping[str, Profile] = {
    "gpt-4o-mini": Profile(0.35, 85),
    "gpt-4o": Profile(0.45, 80),
    "gpt-4.1-nano": Profile(0.25, 150),
    "gpt-4.1-mini": Profile(0.35, 90),
    "gpt-4.1": Profile(0.5, 75),
    "o4-mini": Profile(0.6, 120, thinking=2.0),
    "o3": Profile(1.0, 80, thinking=2.5),
    "deepseek-chat": Profile(0.6, 40),
    "deepseek-reasoner": Profile(0.8, 40, thinking=2.0),
    "claude-haiku-4-5": Profile(0.4, 110),
    "claude-sonnet-4-5": Profile(0.9, 65),
    "gemini-2.5-flash": Profile(0.45, 180, thinking=1.5),
    "meta-llama/Llama-3.1-8B": Profile(0.08, 55),
}
DEFAULT_PROFILE = Profile(0.5, 70)

_EN = ("This is a simulated answer: no model was called and nothing was billed by a provider. "
       "In a real deployment the model chosen by the gateway would answer here, and the tokens "
       "it sends are what the ledger charges. ")
_ZH = ("这是模拟的回答：没有调用任何模型，也没有产生任何费用。"
       "真实部署时，网关选中的模型会在这里作答，账本按它实际输出的令牌计费。")


def profile_for(upstream_model: str) -> Profile:
    for prefix in sorted(PROFILES, key=len, reverse=True):
        if upstream_model.startswith(prefix):
            return PROFILES[prefix]
    return DEFAULT_PROFILE


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _cjk(text: str) -> bool:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff") * 4 > len(text.strip() or "x")


def answer_text(upstream_model: str, prompt: str, tokenizer: str, limit: int | None) -> str:
    """The simulated reply: marked, in the prompt's language, 30-120 tokens long (longer for
    longer prompts, stable for the same prompt and model), at most ``limit`` tokens."""
    seed = int.from_bytes(hashlib.sha256(f"{upstream_model}\n{prompt}".encode()).digest()[:4])
    target = min(120, 30 + seed % 50 + len(prompt) // 10)
    if limit is not None:
        target = max(1, min(target, limit))
    filler = _ZH if _cjk(prompt) else _EN
    text = f"{MARK} {upstream_model}: "
    while count_text_tokens(text, tokenizer) < target:
        text += filler
    # trim to the target, on a character boundary
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_text_tokens(text[:mid], tokenizer) <= target:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip()


def _pieces(text: str, tokenizer: str) -> list[str]:
    """``text`` cut into stream deltas of about 3 tokens each."""
    out, start, step = [], 0, max(1, len(text) // max(1, count_text_tokens(text, tokenizer)) * 3)
    while start < len(text):
        out.append(text[start:start + step])
        start += step
    return out


class SimulatedUpstream:
    """The aiohttp app. ``tokenizers``: upstream model id -> the tokenizer the gateway counts it
    with (so that usage matches the gateway's own counts); ``speed``: divides every delay."""

    def __init__(self, tokenizers: Mapping[str, str], speed: float = 1.0) -> None:
        self.tokenizers = dict(tokenizers)
        self.speed = speed
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        return app

    def _headers(self) -> dict[str, str]:
        return {SIMULATED_HEADER: "true"}

    def _tokenizer(self, model: str) -> str:
        return self.tokenizers.get(model, "estimate")

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self.speed > 0:
            await asyncio.sleep(seconds / self.speed)

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "owned_by": "simulated"} for m in self.tokenizers]
        return web.json_response({"object": "list", "data": data}, headers=self._headers())

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        model = str(body.get("model", ""))
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        tokens = count_embedding_input(raw, self._tokenizer(model))
        await self._sleep(0.05)
        data = []
        for i, item in enumerate(inputs):
            digest = hashlib.sha256(orjson.dumps(item)).digest()
            data.append({"object": "embedding", "index": i,
                         "embedding": [(b - 128) / 128 for b in digest[:16]]})
        self.requests += 1
        return web.json_response(
            {"object": "list", "data": data, "model": model,
             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
            headers=self._headers())

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        model = str(body.get("model", ""))
        tokenizer = self._tokenizer(model)
        profile = profile_for(model)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        limit = limit if isinstance(limit, int) and limit > 0 else None
        prompt_tokens = count_chat_tokens(body, tokenizer)
        reasoning = 0
        visible_limit = limit
        text = answer_text(model, _last_user_text(body.get("messages")), tokenizer, None)
        visible = count_text_tokens(text, tokenizer)
        if profile.thinking:
            reasoning = round(visible * profile.thinking)
            if limit is not None:
                reasoning = min(reasoning, limit // 2)
                visible_limit = limit - reasoning
        if visible_limit is not None and visible > visible_limit:
            text = answer_text(model, _last_user_text(body.get("messages")), tokenizer,
                               visible_limit)
            visible = count_text_tokens(text, tokenizer)
        finish = "length" if limit is not None and visible + reasoning >= limit else "stop"
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": visible + reasoning,
            "total_tokens": prompt_tokens + visible + reasoning,
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        ident = "chatcmpl-sim-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        self.requests += 1
        # time to the first visible token: the model's latency, then its hidden reasoning
        await self._sleep(profile.ttft_s + reasoning / profile.tokens_per_s)
        if not body.get("stream"):
            await self._sleep(visible / profile.tokens_per_s)
            return web.json_response({
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "simulated",
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                             "message": {"role": "assistant", "content": text}}],
                "usage": usage,
            }, headers=self._headers())
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", **self._headers()})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None,
                  with_usage: dict[str, Any] | None = None, choices: bool = True) -> bytes:
            data: dict[str, Any] = {
                "id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": "simulated",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                             "logprobs": None}] if choices else [],
            }
            if with_usage is not None:
                data["usage"] = with_usage
            return b"data: " + orjson.dumps(data) + b"\n\n"

        await response.write(chunk({"role": "assistant", "content": ""}))
        pieces = _pieces(text, tokenizer)
        per_piece = visible / profile.tokens_per_s / max(1, len(pieces))
        for piece in pieces:
            await response.write(chunk({"content": piece}))
            await self._sleep(per_piece)
        await response.write(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(chunk({}, with_usage=usage, choices=False))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def start(tokenizers: Mapping[str, str], speed: float = 1.0,
                host: str = "127.0.0.1") -> tuple[web.AppRunner, str, SimulatedUpstream]:
    """Serve the simulated upstream on a free loopback port: (runner, base URL with /v1, app)."""
    sim = SimulatedUpstream(tokenizers, speed)
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{port}/v1", sim
