"""The fast path: OpenAI-compatible providers over pooled keep-alive connections.

The body is forwarded as the client sent it, with only ``model`` (and, for streams,
``stream_options.include_usage``) changed by the caller; responses are not re-validated.
Streams are relayed as the bytes arrive. The HTTP client is :mod:`router.upstream.h1` (asyncio
protocols and httptools' parser), which does per request a fraction of what aiohttp did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from router.upstream.base import (
    ConnectFailed,
    Endpoint,
    Target,
    TimedOut,
    UpstreamResponse,
    endpoint_url,
)
from router.upstream.h1 import ConnectError, ConnectTimeout, Pool, ReadTimeout, Response, Timeouts
from router.upstream.wire import encode_body


def _retry_after(resp: Response) -> float | None:
    value = resp.header(b"retry-after")
    if value is None:
        ms = resp.header(b"retry-after-ms")
        try:
            return float(ms) / 1000 if ms is not None else None
        except ValueError:
            return None
    try:
        return float(value)
    except ValueError:
        return None


class OpenAICompatTransport:
    def __init__(self, *, keepalive_s: float = 60.0) -> None:
        self._pool = Pool(keepalive_s=keepalive_s)
        self._timeouts: dict[str, Timeouts] = {}

    def _timeout(self, target: Target) -> Timeouts:
        t = self._timeouts.get(target.name)
        if t is None:
            c = target.cfg.timeout
            t = self._timeouts[target.name] = Timeouts(c.connect, c.read, c.total)
        return t

    async def send(
        self, target: Target, endpoint: Endpoint, body: dict[str, Any], stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        url = endpoint_url(target.api_base, endpoint)
        payload = encode_body(body)  # as received: lone surrogates too (wire.py)
        try:
            resp = await self._pool.post(url, payload,
                                         target.headers if headers is None else headers,
                                         self._timeout(target))
        except (ConnectTimeout, ReadTimeout):
            raise TimedOut(
                f"no response from {target.name} within its timeout", phase="connect"
            ) from None
        except (ConnectError, OSError, ValueError) as exc:
            raise ConnectFailed(f"cannot reach {target.name}: {exc}",
                                refused=getattr(exc, "refused", False)
                                or isinstance(exc, ConnectionRefusedError)) from None
        if stream and resp.status == 200:
            return UpstreamResponse(
                status=200, stream=_iter_body(resp, target.name), close=_closer(resp)
            )
        try:
            data = await resp.read()
        except ReadTimeout:
            raise TimedOut(f"{target.name} stopped answering", phase="read") from None
        except ConnectError as exc:
            raise ConnectFailed(f"{target.name} dropped the connection: {exc}") from None
        return UpstreamResponse(status=resp.status, body=data, retry_after=_retry_after(resp))

    async def aclose(self) -> None:
        await self._pool.aclose()


def _closer(resp: Response) -> Any:
    async def close() -> None:
        resp.close()

    return close


async def _iter_body(resp: Response, name: str) -> AsyncIterator[bytes]:
    try:
        async for data in resp.iter_chunks():
            yield data
    except ReadTimeout:
        raise TimedOut(f"{name} stopped streaming", phase="read") from None
    except ConnectError:
        raise ConnectFailed(f"{name} dropped the stream") from None
    finally:
        resp.close()
