"""Which models can serve one request: the ``unavailable`` mapping the routing passes over.

The policy engine already passes over models in ``unavailable`` (model -> why) and shows why
in ``/v1/route``. Per request, this merges :attr:`AppState.unavailable` (keys unset, circuits
open) with the models that cannot serve *this* request: it needs images, audio, tools,
logprobs or JSON-schema output the model does not support; it carries something only an
upstream speaking the client's API natively can take; the model serves neither that API nor
chat completions; or a previous response is held by another provider. The engine is unchanged.

A request naming a model goes to that model whatever ``unavailable`` says (that is the
engine's rule for a down model, whose upstream answers for itself); a model that *cannot serve
the request* is refused here with a 400 naming why, and is taken out of fallback chains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from router.capabilities import API_NAMES, Serving, lacks, request_needs
from router.errors import InvalidRequest, ServiceUnavailable

if TYPE_CHECKING:
    from router.auth import Caller
    from router.faces.base import Face, FaceRequest
    from router.state import AppState

D = TypeVar("D")


class Merged(Mapping[str, str]):
    """``base`` (the gateway-wide reasons, which win) over this request's own ``extra``."""

    __slots__ = ("base", "extra")

    def __init__(self, base: Mapping[str, str], extra: Mapping[str, str]) -> None:
        self.base = base
        self.extra = extra

    def __getitem__(self, key: str) -> str:
        why = self.base.get(key)
        return why if why is not None else self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        why = self.base.get(key)
        return why if why is not None else self.extra.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.base or key in self.extra

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        yield from (k for k in self.extra if k not in self.base)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class ServingTable:
    """Every chat model's :class:`Serving`, with what each API rules out precomputed."""

    def __init__(self, serving: Mapping[str, Serving], chat_models: list[str]) -> None:
        self.serving = serving
        self.chat_models = chat_models
        self._chatless = {m for m in chat_models if "chat" not in serving[m].apis}

    def __getitem__(self, name: str) -> Serving:
        return self.serving[name]

    def cannot_serve(self, api: str, req: FaceRequest) -> dict[str, str]:
        """Models that cannot serve ``req`` (model -> why); usually empty, found cheaply."""
        needs = request_needs(req.chat)
        if not needs and not req.native_only and not self._chatless:
            return {}
        out: dict[str, str] = {}
        for name in self.chat_models:
            s = self.serving[name]
            why = None
            if api not in s.apis:
                if req.native_only:
                    why = (f"cannot take {', '.join(req.native_only)}: only a model serving the "
                           f"{API_NAMES[api]} API natively can (it serves {_apis(s)})")
                elif "chat" not in s.apis:
                    why = f"serves only the {_apis(s)} API, not {API_NAMES[api]}"
            if why is None and needs:
                why = lacks(s, needs)
            if why is not None:
                out[name] = why
        return out


def _apis(s: Serving) -> str:
    return " and ".join(API_NAMES[a] for a in sorted(s.apis))


def merged(base: Mapping[str, str], extra: Mapping[str, str]) -> Mapping[str, str]:
    return Merged(base, extra) if extra else base


async def unavailable_for(state: AppState, face: Face, req: FaceRequest,
                          caller: Caller) -> Mapping[str, str]:
    """``state.unavailable`` with the models that cannot serve ``req`` (see the module doc)."""
    extra = state.serving.cannot_serve(req.api, req)
    pin = await face.pin(state, req, caller)
    if pin:  # the more precise reason where both apply
        extra.update(pin)
    return merged(state.unavailable, extra)


def narrowed(state: AppState, unavailable: Mapping[str, str], decide: Callable[[], D]) -> D:
    """``decide()``, with the request's own exclusions applied to a concrete model's decision
    (400 for the model asked for, out of its fallbacks), and a route that nothing could serve
    because of this request (not because of outages) answered 400 instead of 503."""
    extra = unavailable.extra if isinstance(unavailable, Merged) else None
    try:
        decision = decide()
    except ServiceUnavailable:
        if extra and not any(m in state.unavailable for m in state.serving.chat_models
                             if m not in extra):
            reasons = "; ".join(f"{m}: {why}" for m, why in extra.items())
            raise InvalidRequest(f"No model this request may be routed to can serve it: "
                                 f"{reasons}.", param="model", code="model_cannot_serve") from None
        raise
    if not extra:
        return decision
    model: str = getattr(decision, "model")  # noqa: B009 - Decision or RouteDecision
    why = extra.get(model)
    if why is not None:
        raise InvalidRequest(f"The model '{model}' cannot serve this request: it {why}.",
                             param="model", code="model_cannot_serve")
    chain: tuple[str, ...] = getattr(decision, "chain")  # noqa: B009
    kept = tuple(m for m in chain if m not in extra)
    if kept != chain:
        decision = dataclasses.replace(decision, chain=kept)  # type: ignore[type-var]
    return decision
