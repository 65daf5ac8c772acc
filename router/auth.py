"""Gateway keys: ``Authorization: Bearer <key>`` looked up by SHA-256, never stored in plain text.

A key is known to the rest of the gateway only by its alias (in logs, metrics, the ledger).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from router.budgets.spec import BudgetSpec, Period, RateLimitSpec, Scope
from router.config import KeyConfig
from router.errors import AuthenticationFailed

ANONYMOUS = KeyConfig(alias="anonymous", key_sha256="0" * 64, user="anonymous", team="anonymous")


@dataclass(frozen=True, slots=True)
class Caller:
    alias: str
    user: str
    team: str
    models: frozenset[str] | None
    #: The key's own budgets and rate limits (config.yaml or the admin API).
    budgets: tuple[BudgetSpec, ...] = ()
    rate_limits: tuple[RateLimitSpec, ...] = ()

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


def caller_of(key: KeyConfig) -> Caller:
    budgets = tuple(
        BudgetSpec(Scope.KEY, key.alias, Period(period), round(usd * 1_000_000))
        for period, usd in key.budget_usd.items()
    )
    rates: tuple[RateLimitSpec, ...] = ()
    if key.requests_per_minute or key.tokens_per_minute:
        rates = (RateLimitSpec(Scope.KEY, key.alias, key.requests_per_minute,
                               key.tokens_per_minute),)
    models = frozenset(key.models) if key.models else None
    return Caller(key.alias, key.user, key.team, models, budgets, rates)


def presented_key(authorization: str | None, api_key_header: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>``, else the Azure-style
    ``api-key`` header, stripped. None when there is none (an ``Authorization`` header of
    another scheme, or a blank bearer value, counts as none, and hides ``api-key``); a
    whitespace-only ``api-key`` gives ``""``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    if api_key_header:
        return api_key_header.strip()
    return None


def request_credentials(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """A request's ``Authorization`` and ``api-key`` headers (for :meth:`KeyRing.authenticate`
    and the admin key check)."""
    return headers.get("authorization"), headers.get("api-key")


class KeyRing:
    def __init__(self, keys: Mapping[str, KeyConfig], *, require_key: bool) -> None:
        self._by_hash = {h: caller_of(k) for h, k in keys.items()}
        self.require_key = require_key
        self._anonymous = caller_of(ANONYMOUS)
        #: Keys created through the admin API (router.admin.DynamicKeys), after these.
        self.dynamic: Mapping[str, Caller] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, authorization: str | None, api_key_header: str | None = None) -> Caller:
        """The caller behind an ``Authorization`` (or Azure-style ``api-key``) header."""
        secret = presented_key(authorization, api_key_header)
        if secret is None:
            if not self.require_key:
                return self._anonymous
            raise AuthenticationFailed(
                "Missing gateway key: send 'Authorization: Bearer <key>' (the OpenAI SDKs do "
                "this from OPENAI_API_KEY) or 'x-api-key: <key>' (the Anthropic SDKs)."
            )
        digest = hashlib.sha256(secret.encode()).hexdigest()
        caller = self._by_hash.get(digest) or self.dynamic.get(digest)
        if caller is None:
            if not self.require_key:
                return self._anonymous
            raise AuthenticationFailed("Incorrect gateway key provided.")
        return caller

    def authenticate_request(self, headers: Mapping[str, str]) -> Caller:
        """:meth:`authenticate` on a request's headers: ``Authorization: Bearer``, else the
        Azure-style ``api-key``, else Anthropic's ``x-api-key`` (the anthropic SDKs, Claude
        Code with ``ANTHROPIC_API_KEY``)."""
        authorization, api_key = request_credentials(headers)
        if api_key is None:
            api_key = headers.get("x-api-key")
        return self.authenticate(authorization, api_key)


class MetricsAuth:
    """Who may read ``GET /metrics`` (``server.metrics_auth``): anyone, or whoever presents the
    bearer token. Compared in constant time; the token never appears in a message."""

    def __init__(self, token: str | None, *, required: bool, token_env: str = "") -> None:
        self.required = required
        self.token_env = token_env
        self._token = token.encode() if token else None

    def check(self, headers: Mapping[str, str]) -> None:
        if not self.required:
            return
        presented = presented_key(headers.get("authorization"), None)
        if self._token is None:
            raise AuthenticationFailed(
                f"/metrics needs a bearer token, and {self.token_env} is not set in the "
                "gateway's environment: every scrape is refused.",
                headers={"www-authenticate": 'Bearer realm="metrics"'})
        if presented is None or not hmac.compare_digest(presented.encode(), self._token):
            raise AuthenticationFailed(
                f"/metrics needs 'Authorization: Bearer <the token in {self.token_env}>'.",
                headers={"www-authenticate": 'Bearer realm="metrics"'})
