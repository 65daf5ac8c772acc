"""The legacy Completions face: ``POST /v1/completions`` (``litellm.text_completion``, old SDK
code).

Upstreams serving ``/v1/completions`` (OpenAI's instruct models, vLLM, DeepSeek's FIM beta)
get the client's body with only ``model`` rewritten. Chat models get the prompt as one user
message, as litellm's ``text_completion`` does, and their answers come back as text
completions; what a chat model cannot do (``suffix``, ``echo``, ``best_of``, several prompts,
token-id prompts) is routed only to native upstreams or refused with a 400.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

from router.errors import GatewayError, InvalidRequest
from router.faces.base import Face, FaceRequest, Relay, Rendered
from router.faces.events import TranslatingRelay
from router.sse import StreamRelay, error_event

#: What a legacy request defaults ``max_tokens`` to (OpenAI's documented default).
DEFAULT_MAX_TOKENS = 16
_PASS = ("temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
         "logit_bias", "seed", "user")
KNOWN = frozenset({"model", "prompt", "max_tokens", "stream", "stream_options", "logprobs",
                   "suffix", "echo", "best_of", "metadata", *_PASS})


def _int(body: Mapping[str, Any], key: str, lo: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InvalidRequest(f"'{key}' must be an integer of at least {lo}.", param=key)
    return value


def check(body: dict[str, Any]) -> tuple[str, bool, int, int]:
    """(model, stream, max_tokens, n) of a valid Completions request; else a 400."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt")
    if not isinstance(prompt, str | list) or (isinstance(prompt, list) and not prompt):
        raise InvalidRequest("'prompt' must be a string, an array of strings or of token "
                             "arrays.", param="prompt")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    max_tokens = _int(body, "max_tokens", 0)
    n = _int(body, "n", 1) or 1
    _int(body, "best_of", 1)
    _int(body, "logprobs", 0)
    return model, stream, DEFAULT_MAX_TOKENS if max_tokens is None else max(1, max_tokens), n


def to_chat(body: dict[str, Any], stream: bool, max_tokens: int
            ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The chat request for a (checked) Completions request, and what chat cannot carry."""
    missing = [f"{k!r}" for k in body if k not in KNOWN]
    prompt = body["prompt"]
    if isinstance(prompt, list):
        if len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        else:
            missing.append("a prompt that is not one string")
            prompt = " ".join(p for p in prompt if isinstance(p, str))
    if body.get("suffix"):
        missing.append("'suffix'")
    if body.get("echo"):
        missing.append("'echo'")
    if (body.get("best_of") or 1) > 1:
        missing.append("'best_of'")
    chat: dict[str, Any] = {"model": body["model"],
                            "messages": [{"role": "user", "content": str(prompt)}],
                            "max_tokens": max_tokens}
    for key in _PASS:
        if body.get(key) is not None:
            chat[key] = body[key]
    logprobs = body.get("logprobs")
    if isinstance(logprobs, int) and not isinstance(logprobs, bool) and logprobs >= 0:
        chat["logprobs"] = True
        if logprobs:
            chat["top_logprobs"] = logprobs
    if isinstance(body.get("metadata"), dict):
        chat["metadata"] = body["metadata"]
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, tuple(missing)


def _logprobs(choice: Mapping[str, Any]) -> dict[str, Any] | None:
    lp = choice.get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return None
    tokens, logprobs, tops, offsets, at = [], [], [], [], 0
    for t in content:
        token = str(t.get("token", ""))
        tokens.append(token)
        logprobs.append(t.get("logprob"))
        tops.append({str(x.get("token")): x.get("logprob") for x in t.get("top_logprobs") or ()})
        offsets.append(at)
        at += len(token)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops,
            "text_offset": offsets}


def from_chat(data: Mapping[str, Any]) -> dict[str, Any]:
    """A chat completion rendered as a text completion."""
    choices = []
    for choice in data.get("choices") or ():
        message = choice.get("message") or {}
        choices.append({"text": message.get("content") or "", "index": choice.get("index", 0),
                        "logprobs": _logprobs(choice),
                        "finish_reason": choice.get("finish_reason")})
    out: dict[str, Any] = {"id": "cmpl-" + os.urandom(12).hex(), "object": "text_completion",
                           "created": data.get("created") or int(time.time()),
                           "model": data.get("model"), "choices": choices}
    if isinstance(data.get("usage"), dict):
        out["usage"] = data["usage"]
    return out


class StreamTranslator:
    """Chat-completions chunks in, text-completion chunks out (then ``[DONE]``)."""

    response_id: str | None = None

    def __init__(self, wants_usage: bool) -> None:
        self.wants_usage = wants_usage
        self.id = "cmpl-" + os.urandom(12).hex()
        self.model: Any = None
        self.created = int(time.time())

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        c: dict[str, Any] = {"id": self.id, "object": "text_completion", "created": self.created,
                             "model": self.model, "choices": choices}
        if usage is not None:
            c["usage"] = usage
        return b"data: " + orjson.dumps(c) + b"\n\n"

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        self.model = self.model or chunk.get("model")
        out = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") or ""
            finish = choice.get("finish_reason")
            if text or finish:
                out.append({"text": text, "index": choice.get("index", 0),
                            "logprobs": _logprobs(choice), "finish_reason": finish})
        return self._chunk(out) if out else b""

    def finish(self, usage: dict[str, Any] | None) -> bytes:
        tail = self._chunk([], usage) if self.wants_usage and usage is not None else b""
        return tail + b"data: [DONE]\n\n"

    def error(self, exc: GatewayError) -> bytes:
        return error_event(exc.payload())


class CompletionsFace(Face):
    api = "completions"
    endpoint = "completions"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        model, stream, max_tokens, n = check(body)
        wants = False
        if stream:
            options = body.get("stream_options") or {}
            if not isinstance(options, dict):
                raise InvalidRequest("'stream_options' must be an object.",
                                     param="stream_options")
            wants = bool(options.get("include_usage"))
            body["stream_options"] = {**options, "include_usage": True}
        chat, missing = to_chat(body, stream, max_tokens)
        return FaceRequest("completions", chat, model, stream, max_tokens, n, native=body,
                           native_only=missing, client_wants_usage=wants)

    def cap_output(self, req: FaceRequest, cap: int) -> None:
        req.chat["max_tokens"] = cap
        assert req.native is not None
        req.native["max_tokens"] = cap

    def render(self, req: FaceRequest, data: Any, raw: bytes, native: bool) -> Rendered:
        if not isinstance(data, dict):
            data = {}
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else None
        return Rendered(raw if native else orjson.dumps(from_chat(data)), usage)

    def relay(self, req: FaceRequest, native: bool) -> Relay:
        if native:
            return StreamRelay(strip_usage_chunk=not req.client_wants_usage)
        return TranslatingRelay(StreamTranslator(req.client_wants_usage))
