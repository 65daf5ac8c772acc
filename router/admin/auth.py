"""The admin key: ``Authorization: Bearer <admin key>`` (or ``api-key``) on every /admin route.

The key comes from the environment variable config.yaml names (``admin: {key_env: ...}``,
default ``ROUTER_ADMIN_KEY``), read at each request so rotating it needs no config change.
Unset means the admin API is off: every admin request gets 401. Comparison is constant-time on
SHA-256 digests; neither key ever appears in a log line or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from router.auth import presented_key
from router.config import Config
from router.errors import AuthenticationFailed


def admin_key_env(config: Config) -> str:
    """The variable holding the admin key: ``config.admin.key_env`` (default in AdminConfig)."""
    return config.admin.key_env


def check_admin_key(
    authorization: str | None,
    api_key: str | None,
    *,
    env_var: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`AuthenticationFailed` (401) unless the request carries the admin key."""
    expected = (os.environ if environ is None else environ).get(env_var)
    if not expected:
        raise AuthenticationFailed(f"The admin API is disabled: set {env_var} in the gateway's "
                                   "environment to enable it.")  # fmt: skip
    given = presented_key(authorization, api_key) or None  # a blank api-key is no key here
    if given is None:
        raise AuthenticationFailed("Missing admin key: send 'Authorization: Bearer <admin key>'.")
    ok = hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                             hashlib.sha256(expected.encode()).digest())  # fmt: skip
    if not ok:
        raise AuthenticationFailed("Incorrect admin key provided.")
