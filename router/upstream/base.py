"""The upstream interface: one required method, ``send``.

A :class:`Transport` sends one request to one model and returns what came back, without
retrying or interpreting it; :mod:`router.upstream.dispatch` decides about retries and
fallbacks. Two transports ship: :mod:`router.upstream.openai_compat` (pooled keep-alive
connections of :mod:`router.upstream.h1`, forwards
the JSON with only ``model`` rewritten) and :mod:`router.upstream.litellm_path` (providers with
other protocols). Both return OpenAI wire format: a JSON body, or SSE bytes for a stream.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from router.config import DEFAULT_API_BASES, ModelConfig

#: Upstream endpoints, relative to the model's ``api_base`` (``messages`` and
#: ``messages/count_tokens``: Anthropic's, see :func:`endpoint_url`).
Endpoint = Literal["chat/completions", "embeddings", "responses", "messages",
                   "messages/count_tokens", "completions"]


#: Where a provider reached through litellm for chat serves its own API natively (the gateway
#: passes Messages requests straight to Anthropic).
NATIVE_API_BASES = {"anthropic": "https://api.anthropic.com"}


def endpoint_url(api_base: str | None, endpoint: Endpoint) -> str:
    """The URL of ``endpoint`` on ``api_base``. OpenAI-style bases end in ``/v1``; Anthropic's
    (``https://api.anthropic.com``, ``ANTHROPIC_BASE_URL``) do not, and their paths start at
    ``/v1/messages``: both spellings work for the Messages endpoints."""
    if endpoint.startswith("messages") and not (api_base or "").endswith("/v1"):
        return f"{api_base}/v1/{endpoint}"
    return f"{api_base}/{endpoint}"


class TransportError(Exception):
    """The request did not get an HTTP answer from the upstream."""


class ConnectFailed(TransportError):
    """Could not connect, or the connection dropped before a response. ``refused``: the host
    answered that nothing listens on the port (ECONNREFUSED)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class TimedOut(TransportError):
    """No answer within the model's timeouts."""

    def __init__(self, message: str, *, phase: Literal["connect", "read"]) -> None:
        super().__init__(message)
        self.phase = phase


@dataclass(slots=True)
class Target:
    """A catalogue model made ready to call: resolved URL, key and headers, built once."""

    name: str
    cfg: ModelConfig
    api_key: str | None
    api_base: str | None
    headers: dict[str, str]

    @property
    def missing_key(self) -> str | None:
        """The env var that should hold this model's key, if it is configured but unset."""
        if self.cfg.api_key_env and not self.api_key:
            return self.cfg.api_key_env
        return None

    @property
    def local_keyless(self) -> bool:
        """A model this machine serves itself (no key, an api_base on loopback): when its port
        refuses connections, its server is not running, and retrying at once cannot help."""
        return not self.cfg.api_key_env and is_loopback_url(self.api_base)


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback address (a name other than ``localhost`` is not resolved)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str | None) -> bool:
    return is_loopback_host(urlsplit(url).hostname if url else None)


def build_target(name: str, cfg: ModelConfig, env: dict[str, str] | None = None) -> Target:
    env_map = os.environ if env is None else env
    key = env_map.get(cfg.api_key_env) if cfg.api_key_env else None
    base = cfg.api_base or DEFAULT_API_BASES.get(cfg.provider) or NATIVE_API_BASES.get(cfg.provider)
    headers = {"Content-Type": "application/json", **cfg.extra_headers}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return Target(name=name, cfg=cfg, api_key=key or None, api_base=base, headers=headers)


@dataclass(slots=True)
class UpstreamResponse:
    """What one upstream call returned: a status with a body, or a 200 with a byte stream."""

    status: int
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    retry_after: float | None = None
    close: Callable[[], Awaitable[None]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        if self.close is not None:
            close, self.close = self.close, None
            await close()


class Transport(Protocol):
    async def send(
        self, target: Target, endpoint: Endpoint, body: dict[str, Any], stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send ``body`` (already addressed to ``target``'s upstream model) and return the answer.
        ``headers``: instead of the target's own (a native call of another API, e.g. Anthropic's
        ``x-api-key`` and ``anthropic-version``).

        Raises :class:`ConnectFailed` or :class:`TimedOut` when no HTTP answer came.
        """
        ...

    async def aclose(self) -> None: ...
