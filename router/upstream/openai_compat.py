"""The fast path: OpenAI-compatible providers over one pooled aiohttp session.

The body is forwarded as the client sent it, with only ``model`` (and, for streams,
``stream_options.include_usage``) changed by the caller; responses are not re-validated.
Streams are relayed as the bytes arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from router.upstream.base import (
    ConnectFailed,
    Endpoint,
    Target,
    TimedOut,
    UpstreamResponse,
    endpoint_url,
)
from router.upstream.wire import encode_body


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        ms = headers.get("retry-after-ms")
        try:
            return float(ms) / 1000 if ms is not None else None
        except ValueError:
            return None
    try:
        return float(value)
    except ValueError:
        return None


class OpenAICompatTransport:
    def __init__(self, *, limit_per_host: int = 0) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit_per_host = limit_per_host
        self._timeouts: dict[str, aiohttp.ClientTimeout] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self._limit_per_host,
                ttl_dns_cache=300,
                keepalive_timeout=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent",), auto_decompress=True
            )
        return self._session

    def _timeout(self, target: Target) -> aiohttp.ClientTimeout:
        t = self._timeouts.get(target.name)
        if t is None:
            c = target.cfg.timeout
            t = aiohttp.ClientTimeout(
                total=c.total, connect=c.connect, sock_connect=c.connect, sock_read=c.read
            )
            self._timeouts[target.name] = t
        return t

    async def send(
        self, target: Target, endpoint: Endpoint, body: dict[str, Any], stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        url = endpoint_url(target.api_base, endpoint)
        payload = encode_body(body)  # as received: lone surrogates too (wire.py)
        try:
            resp = await self.session.post(
                url, data=payload, headers=target.headers if headers is None else headers,
                timeout=self._timeout(target),
            )
        except TimeoutError:
            raise TimedOut(
                f"no response from {target.name} within its timeout", phase="connect"
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            refused = isinstance(getattr(exc, "os_error", exc), ConnectionRefusedError)
            raise ConnectFailed(f"cannot reach {target.name}: {type(exc).__name__}",
                                refused=refused) from None
        if stream and resp.status == 200:
            return UpstreamResponse(
                status=200, stream=_iter_body(resp, target.name), close=_closer(resp)
            )
        try:
            data = await resp.read()
        except TimeoutError:
            resp.close()
            raise TimedOut(f"{target.name} stopped answering", phase="read") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            resp.close()
            raise ConnectFailed(
                f"{target.name} dropped the connection: {type(exc).__name__}"
            ) from None
        finally:
            resp.release()
        return UpstreamResponse(
            status=resp.status, body=data, retry_after=_retry_after(resp.headers)
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _closer(resp: aiohttp.ClientResponse) -> Any:
    async def close() -> None:
        resp.close()

    return close


async def _iter_body(resp: aiohttp.ClientResponse, name: str) -> AsyncIterator[bytes]:
    try:
        async for data in resp.content.iter_any():
            yield data
    except TimeoutError:
        raise TimedOut(f"{name} stopped streaming", phase="read") from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError):
        raise ConnectFailed(f"{name} dropped the stream") from None
    finally:
        resp.release()
