"""The gateway's error tree. Each class owns its HTTP status and OpenAI error ``type``/``code``.

Every error a client can see is one of these, rendered by :meth:`GatewayError.body` in OpenAI's
shape ``{"error": {"message", "type", "param", "code"}}``. Handlers raise; one place renders.
Nothing is decided by matching message strings.

::

    GatewayError                     500 server_error (only for bugs; logged with a traceback)
    ├── InvalidRequest               400 invalid_request_error
    │   ├── MalformedJSON            400 invalid_request_error / code invalid_json
    │   └── ContextTooLong           400 invalid_request_error / code context_length_exceeded
    ├── AuthenticationFailed         401 authentication_error / code invalid_api_key
    ├── PermissionDenied             403 permission_error / code model_not_allowed
    ├── ModelNotFound                404 invalid_request_error / code model_not_found
    ├── NotFound                     404 invalid_request_error / code not_found
    ├── MethodNotAllowed             405 invalid_request_error / code method_not_allowed
    ├── RequestTimeout               408 invalid_request_error / code request_timeout (slow body)
    ├── PayloadTooLarge              413 invalid_request_error / code request_too_large
    ├── UnsupportedMediaType         415 invalid_request_error / code unsupported_media_type
    ├── TooManyRequests              429 rate_limit_exceeded (with Retry-After)
    │   ├── BudgetExceededError      429 budget_exceeded (scope, limit, spend, reset)
    │   └── TooManyPendingBodies     429 too_many_pending_bodies (one client's slow bodies)
    ├── ClientDisconnected           499 (logged only: the client left while sending its body)
    ├── UpstreamError                502 upstream_error (after retries and fallbacks)
    │   └── UpstreamClientError      4xx passed through: the upstream refused the request itself
    ├── ServiceUnavailable           503 service_unavailable
    └── UpstreamTimeout              504 upstream_timeout
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    @property
    def status_code(self) -> int:
        return self.status

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.payload())


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class MalformedJSON(InvalidRequest):
    default_code = "invalid_json"


class ContextTooLong(InvalidRequest):
    default_code = "context_length_exceeded"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "model_not_allowed"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTimeout(GatewayError):
    """The request body did not arrive in full in time (``server.body_timeout_s``)."""

    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"


class TooManyRequests(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"


class BudgetExceededError(TooManyRequests):
    """A budget that applies to the request has no room for its worst-case cost."""

    type = "budget_exceeded"
    default_code = "budget_exceeded"


class TooManyPendingBodies(TooManyRequests):
    """One client address has ``server.max_pending_bodies_per_client`` bodies still arriving."""

    default_code = "too_many_pending_bodies"


class ClientDisconnected(GatewayError):
    """The client closed the connection before its request body arrived: nobody to answer."""

    status = 499
    type = "client_disconnected"
    default_code = "client_disconnected"


class UpstreamError(GatewayError):
    """The upstream failed after retries and fallbacks. Carries the last upstream status."""

    status = 502
    type = "upstream_error"
    default_code = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.upstream_status = upstream_status


class UpstreamClientError(UpstreamError):
    """The upstream rejected the request itself (400, 404, 413, 422): relayed with its status,
    since retrying or falling back would not help and the client must fix the request."""

    type = "invalid_request_error"

    def __init__(self, message: str, *, upstream_status: int, **kw: Any) -> None:
        super().__init__(message, upstream_status=upstream_status, **kw)

    @property
    def status_code(self) -> int:
        return self.upstream_status or 400


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    default_code = "service_unavailable"


class NothingCallable(ServiceUnavailable):
    """Routing found no model the caller may use that this gateway can call now (keys unset,
    circuits open, a local server not running): retrying at once cannot help (the app adds
    ``x-should-retry: false``, and which key variables would make ``models`` callable)."""

    def __init__(self, message: str, *, models: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        #: The models that could not be called (for the hint naming their key variables).
        self.models = models


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_timeout"
    default_code = "upstream_timeout"
