"""Policy errors: a bad policy file (with file, line and key), and a request no model can serve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from router.errors import (
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NothingCallable,
    PermissionDenied,
)
from router.yamlfile import DocumentError


class PolicyError(DocumentError):
    """A policy file is malformed, fails its schema, or disagrees with the config's catalogue.

    ``problems`` holds one ``file:line: key.path: message`` line per problem.
    """


RouteErrorKind = Literal[
    "model_not_found", "permission", "unavailable", "context", "cost", "no_model"]


@dataclass(frozen=True, slots=True)
class RouteError:
    """Why a request cannot be routed; :meth:`to_gateway_error` gives the HTTP error to raise."""

    kind: RouteErrorKind
    message: str
    #: For ``unavailable``: the models that cannot be called from here now.
    models: tuple[str, ...] = ()

    def to_gateway_error(self) -> GatewayError:
        if self.kind == "model_not_found":
            return ModelNotFound(self.message, param="model")
        if self.kind == "permission":
            return PermissionDenied(self.message, param="model")
        if self.kind == "unavailable":
            return NothingCallable(self.message, models=self.models)
        if self.kind == "context":
            return ContextTooLong(self.message, param="messages")
        if self.kind == "cost":
            return InvalidRequest(self.message, param="max_tokens", code="cost_limit_exceeded")
        return InvalidRequest(self.message, param="model", code="no_eligible_model")
