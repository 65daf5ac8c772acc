"""Providers with other protocols (Anthropic, Gemini, Bedrock, ...) through ``litellm``.

litellm translates the OpenAI-shaped request and answer; this transport turns its result back
into OpenAI wire bytes so that the gateway relays every provider the same way. litellm is
imported on the first call only (it costs ~2 s), and its own retries are off: the dispatcher
owns retries and fallbacks.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from router.upstream.base import ConnectFailed, Endpoint, Target, TimedOut, UpstreamResponse

_litellm: Any = None


def _load() -> Any:
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True
        litellm.drop_params = True
        _litellm = litellm
    return _litellm


def _dump(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        out: dict[str, Any] = obj.model_dump(exclude_none=True)
        return out
    return dict(obj)


def _error_body(exc: Exception, status: int) -> bytes:
    message = getattr(exc, "message", None) or str(exc)
    return orjson.dumps(
        {"error": {"message": message, "type": type(exc).__name__, "param": None, "code": None}}
    )


def _message_body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": None}})


def _network_cause(exc: BaseException) -> OSError | None:
    """The socket-level error (refused, reset, DNS, TLS, timeout: all ``OSError``) behind a litellm
    exception, if any: litellm wraps a refused connection as a 500 ``InternalServerError``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class LiteLLMTransport:
    async def send(
        self, target: Target, endpoint: Endpoint, body: dict[str, Any], stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        litellm = _load()
        cfg = target.cfg
        kwargs = dict(body)
        kwargs["model"] = f"{cfg.provider}/{cfg.upstream_model}"
        if target.api_key:
            kwargs["api_key"] = target.api_key
        if cfg.api_base:
            kwargs["api_base"] = cfg.api_base
        if cfg.extra_headers:
            kwargs["extra_headers"] = dict(cfg.extra_headers)
        kwargs["timeout"] = cfg.timeout.total
        kwargs["num_retries"] = 0
        kwargs["max_retries"] = 0
        if endpoint not in ("chat/completions", "embeddings"):  # the pipeline never asks this
            return UpstreamResponse(status=400, body=_message_body(
                f"{target.name} is reached through litellm, which serves chat completions and "
                f"embeddings, not /{endpoint}"))
        try:
            if endpoint == "embeddings":
                kwargs.pop("stream", None)
                kwargs.pop("stream_options", None)
                result = await litellm.aembedding(**kwargs)
                return UpstreamResponse(status=200, body=orjson.dumps(_dump(result)))
            result = await litellm.acompletion(**kwargs)
        except Exception as exc:  # litellm's exception tree: map by type, never by message
            return self._failure(litellm, exc, target)
        if not stream:
            return UpstreamResponse(status=200, body=orjson.dumps(_dump(result)))
        return UpstreamResponse(status=200, stream=_sse(result, litellm, target))

    def _failure(self, litellm: Any, exc: Exception, target: Target) -> UpstreamResponse:
        exceptions = litellm.exceptions
        if isinstance(exc, exceptions.Timeout):
            raise TimedOut(f"no response from {target.name} within its timeout", phase="read")
        network = _network_cause(exc)
        if network is not None:
            raise ConnectFailed(f"cannot reach {target.name}: {type(network).__name__}")
        if isinstance(exc, exceptions.APIConnectionError):
            # litellm reports its own failure to translate the request (a KeyError on a message
            # without content, say) as a connection error: nothing was sent. The request is
            # malformed for this provider; retrying or counting it against the model's health
            # would be wrong.
            cause = exc.__context__ or exc.__cause__
            what = type(cause).__name__ if cause is not None else type(exc).__name__
            return UpstreamResponse(status=400, body=_message_body(
                f"the request could not be translated for {target.cfg.provider} ({what}): check "
                "the message roles, contents and parameters"))
        status = getattr(exc, "status_code", None)
        if not isinstance(status, int) or status < 400:
            status = 500
        return UpstreamResponse(status=status, body=_error_body(exc, status))

    async def aclose(self) -> None:
        return None


async def _sse(result: Any, litellm: Any, target: Target) -> AsyncIterator[bytes]:
    try:
        async for chunk in result:
            yield b"data: " + orjson.dumps(_dump(chunk)) + b"\n\n"
    except litellm.exceptions.Timeout:
        raise TimedOut(f"{target.name} stopped streaming", phase="read") from None
    except Exception:
        raise ConnectFailed(f"{target.name} failed mid-stream") from None
    yield b"data: [DONE]\n\n"
