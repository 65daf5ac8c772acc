"""Retries and fallbacks: data in, one answer out.

``call(chain, ...)`` walks an ordered chain of models (the choice, then its fallbacks). Each model
is tried up to ``1 + max_retries`` times on retryable failures (connection errors, 408/409/429,
5xx) with exponential backoff and jitter, honouring ``Retry-After``; then the next model is
tried. A rejection of the request itself (400, 413, 422) stops at once: another model would
refuse it too, and the client must fix it. 401/403/404 move on to the next model without retrying
(a key or model id is misconfigured there). A keyless model on this machine whose port refuses
the connection is not running: it is not retried either, and counts as not callable, like a
model without its key. What each attempt did is kept for headers and logs.

Every attempt's outcome feeds the models' circuits (:mod:`router.upstream.health`): a model whose
circuit is open is skipped like a model without its key. When nothing in the chain can be called
(keys unset, circuits open, local servers not running), the error is a 503
(:class:`~router.errors.NothingCallable`) that says ``x-should-retry: false`` (and, for circuits,
``Retry-After``), so that the OpenAI SDKs do not repeat a request that cannot succeed yet.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.errors import NothingCallable, UpstreamClientError, UpstreamError, UpstreamTimeout
from router.upstream.base import (
    ConnectFailed,
    Endpoint,
    Target,
    TimedOut,
    Transport,
    UpstreamResponse,
)
from router.upstream.health import Health

#: The outcome of a model skipped because its circuit is open (router/upstream/health.py).
CIRCUIT_OPEN = "circuit open"
#: The outcome of a keyless model on loopback that refused the connection (not running).
NOT_RUNNING = "not running"
#: Outcomes of models that were passed over without an attempt.
NOT_TRIED = frozenset({"no key", CIRCUIT_OPEN})
#: Outcomes that say a model cannot be called from here now.
NOT_CALLABLE = NOT_TRIED | {NOT_RUNNING}
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
CLIENT_FAULT = frozenset({400, 413, 422})
_SECRETISH = re.compile(r"(sk|key|pk|rk)-[A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)


@dataclass(slots=True)
class Attempt:
    model: str
    outcome: str  # "ok", "status 503", "timeout", "connect", "no key", "circuit open",
    #               "not running"
    status: int | None = None
    message: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Leg:
    """How one model of a chain is called: the endpoint and body, the headers (None: the
    target's own) and the transport (None: the model's ``api_path``; ``openai``: the HTTP
    pass-through, for a native call of another API than chat). ``native``: the body is the
    client's own (its API spoken natively), not a translation to chat completions."""

    endpoint: Endpoint
    body: dict[str, Any]
    native: bool = True
    headers: Mapping[str, str] | None = None
    transport: str | None = None


#: Chooses the leg for each model of a chain (faces: native or translated).
Plan = Callable[[Target], Leg]


@dataclass(slots=True)
class Dispatched:
    target: Target
    response: UpstreamResponse
    attempts: list[Attempt] = field(default_factory=list)
    #: The leg that answered (None: called without a plan).
    leg: Leg | None = None


def upstream_message(body: bytes, secrets: Sequence[str] = ()) -> str:
    """The upstream's error message, trimmed, with anything key-like redacted."""
    text = ""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            text = str(err.get("message") or err.get("detail") or "")
        elif isinstance(err, str):
            text = err
    if not text:
        text = body[:300].decode("utf-8", "replace").strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _SECRETISH.sub("[redacted]", text)
    return text[:300]


class Dispatcher:
    def __init__(
        self,
        targets: Mapping[str, Target],
        transports: Mapping[str, Transport],
        *,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 8.0,
        observer: Callable[[Attempt, bool], None] | None = None,
        health: Health | None = None,
    ) -> None:
        self.observer = observer
        #: Passive health: circuits of failing models are skipped (router/upstream/health.py).
        self.health = health if health is not None else Health(0, 1.0, 1.0)
        self.targets = targets
        self.transports = transports
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    def _record(self, attempts: list[Attempt], attempt: Attempt, retry: bool) -> None:
        attempts.append(attempt)
        if self.observer is not None:
            self.observer(attempt, retry)

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.backoff_max_s)
        base: float = min(self.backoff_max_s, self.backoff_base_s * 2.0**retry)
        return base * (0.5 + random.random() / 2)

    async def call(
        self, chain: Sequence[str], endpoint: Endpoint, body: dict[str, Any], stream: bool,
        *, plan: Plan | None = None,
    ) -> Dispatched:
        """Try ``chain`` in order; return the first success or raise a :mod:`router.errors` error.

        ``body["model"]`` is set to each target's upstream id in turn (the dict is reused).
        With a ``plan``, each target is called with the leg it gives instead of ``endpoint``
        and ``body``.
        """
        attempts: list[Attempt] = []
        health = self.health
        leg: Leg | None = None
        headers: Mapping[str, str] | None = None
        for name in chain:
            target = self.targets[name]
            if target.missing_key:
                self._record(attempts, Attempt(name, "no key",
                                               message=f"{target.missing_key} is not set"), False)
                continue
            transport = self.transports[target.cfg.api_path]
            if plan is not None:
                leg = plan(target)
                endpoint, body, headers = leg.endpoint, leg.body, leg.headers
                if leg.transport is not None:
                    transport = self.transports[leg.transport]
            body["model"] = target.cfg.upstream_model
            for retry in range(target.cfg.max_retries + 1):
                if not health.acquire(name):  # open, or its probe is in flight: next model
                    if retry == 0:
                        why = health.why(name) or "circuit open"
                        self._record(attempts, Attempt(name, CIRCUIT_OPEN, message=why), False)
                    break
                started = time.perf_counter()
                again = retry > 0
                try:
                    if headers is None:
                        resp = await transport.send(target, endpoint, body, stream)
                    else:
                        resp = await transport.send(target, endpoint, body, stream, headers)
                except TimedOut as exc:
                    elapsed = time.perf_counter() - started
                    health.failed(name, "timeout")
                    self._record(attempts, Attempt(name, "timeout", message=str(exc),
                                                   seconds=elapsed), again)
                    if exc.phase == "read":
                        break  # the model is slow, not flaky: waiting again rarely helps
                    retry_after = None
                except ConnectFailed as exc:
                    elapsed = time.perf_counter() - started
                    health.failed(name, "connection failed")
                    if exc.refused and target.local_keyless:
                        # A model served on this machine whose server is not running: not
                        # callable, like a model without its key (no retry; the next model).
                        self._record(attempts, Attempt(
                            name, NOT_RUNNING, message=f"nothing listens at {target.api_base} "
                            "(connection refused): start its server, or set its api_base",
                            seconds=elapsed), again)
                        break
                    self._record(attempts, Attempt(name, "connect", message=str(exc),
                                                   seconds=elapsed), again)
                    retry_after = None
                except BaseException:  # cancelled (the client left), or a bug: no outcome
                    health.released(name)
                    raise
                else:
                    elapsed = time.perf_counter() - started
                    if resp.status >= 500:
                        health.failed(name, f"status {resp.status}")
                    else:
                        health.succeeded(name)
                    if 200 <= resp.status < 300:
                        self._record(attempts, Attempt(name, "ok", resp.status, seconds=elapsed),
                                     again)
                        return Dispatched(target, resp, attempts, leg)
                    message = upstream_message(resp.body, (target.api_key or "",))
                    status = f"status {resp.status}"
                    self._record(attempts, Attempt(name, status, resp.status, message, elapsed),
                                 again)
                    if resp.status in CLIENT_FAULT:
                        raise UpstreamClientError(
                            f"{name} rejected the request: {message}", upstream_status=resp.status,
                            headers=_attempt_headers(attempts),
                        )
                    if resp.status not in RETRYABLE:
                        break
                    retry_after = resp.retry_after
                if retry < target.cfg.max_retries:
                    await asyncio.sleep(self._delay(retry, retry_after))
        raise self._final_error(chain, attempts)

    def _final_error(self, chain: Sequence[str], attempts: list[Attempt]) -> Exception:
        headers = _attempt_headers(attempts)
        callable_now = [n for n in chain if not self.targets[n].missing_key
                        and self.health.why(n) is None]
        if not callable_now or all(a.outcome in NOT_CALLABLE for a in attempts):
            # Nothing in the chain can be called before a circuit's cool-down (or ever, for a
            # missing key): an SDK retrying at once would only multiply the refusals.
            headers["x-should-retry"] = "false"
            wait = self.health.retry_in(chain)
            if wait is not None:
                headers["retry-after"] = str(max(1, math.ceil(wait)))
        return _final_error(chain, attempts, headers)


def _attempt_headers(attempts: list[Attempt]) -> dict[str, str]:
    return {"x-router-attempts": str(len(attempts))}


def _final_error(chain: Sequence[str], attempts: list[Attempt],
                 headers: dict[str, str]) -> Exception:
    tried = [a for a in attempts if a.outcome not in NOT_TRIED]
    if all(a.outcome in NOT_CALLABLE for a in attempts):
        skipped = "; ".join(f"{a.model}: {a.message}" for a in attempts)
        return NothingCallable(
            f"No model could be called for {chain[0]!r}: {skipped}.", headers=headers,
            models=tuple(dict.fromkeys(a.model for a in attempts)),
        )
    summary = "; ".join(
        f"{a.model}: {a.outcome}" + (f" ({a.message})" if a.message else "") for a in tried[-3:]
    )
    last = tried[-1]
    if all(a.outcome == "timeout" for a in tried):
        return UpstreamTimeout(f"upstream timed out after {len(tried)} attempt(s): {summary}",
                               headers=headers)
    return UpstreamError(
        f"upstream failed after {len(tried)} attempt(s): {summary}",
        upstream_status=last.status,
        headers=headers,
    )
