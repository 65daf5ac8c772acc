"""The Responses face: ``POST /v1/responses``.

Upstreams serving the Responses API get the client's body with only ``model`` rewritten; the
gateway remembers where each stored response lives (:mod:`router.faces.homes`), so that a
request with ``previous_response_id`` goes to the provider holding it, or gets a 400 saying
why not. Other upstreams get the chat-completions translation of
:mod:`router.faces.responses_wire` (only without ``previous_response_id``); their answers come
back as Responses (with ``store: false``: nothing upstream keeps them), streams included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from router.errors import GatewayError, InvalidRequest, ServiceUnavailable
from router.faces.base import Face, FaceRequest, Relay, Rendered
from router.faces.events import EventRelay, TranslatingRelay, sse
from router.faces.homes import Home
from router.faces.responses_wire import StreamTranslator, chat_usage_of, check, from_chat, new_id
from router.faces.responses_wire import to_chat as responses_to_chat
from router.upstream.base import Target
from router.upstream.dispatch import Leg

log = logging.getLogger("router.responses")


def account(target: Target) -> str:
    """The provider account a model's stored responses live in (its API base and key)."""
    return f"{target.api_base}|{target.cfg.api_key_env or ''}"


def _on_response(relay: EventRelay, data: dict[str, Any]) -> None:
    response = data.get("response")
    if not isinstance(response, dict):
        return
    if isinstance(response.get("id"), str):
        relay.response_id = response["id"]
    usage = response.get("usage")
    if isinstance(usage, dict):
        relay.usage = chat_usage_of(usage)


def _texts(name: bytes, data: dict[str, Any]) -> Iterator[str]:
    delta = data.get("delta")
    if isinstance(delta, str):
        yield delta


def _error_event(exc: GatewayError) -> bytes:
    return sse("error", {"type": "error", "code": exc.code, "message": exc.message,
                         "param": exc.param, "sequence_number": 0})


class ResponsesFace(Face):
    api = "responses"
    endpoint = "responses"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        model, stream, max_tokens = check(body)
        chat, missing = responses_to_chat(body, stream, max_tokens)
        return FaceRequest("responses", chat, model, stream, max_tokens, 1, native=body,
                           native_only=missing,
                           previous_response_id=body.get("previous_response_id"),
                           store=body.get("store") is not False)

    def cap_output(self, req: FaceRequest, cap: int) -> None:
        req.chat["max_tokens"] = cap
        assert req.native is not None
        req.native["max_output_tokens"] = cap

    def native_leg(self, req: FaceRequest, target: Target) -> Leg:
        assert req.native is not None
        return Leg("responses", req.native, True, None, "openai")

    def render(self, req: FaceRequest, data: Any, raw: bytes, native: bool) -> Rendered:
        if not isinstance(data, dict):
            data = {}
        if native:
            usage = data.get("usage")
            rid = data.get("id")
            return Rendered(raw, chat_usage_of(usage) if isinstance(usage, dict) else None,
                            rid if isinstance(rid, str) else None)
        assert req.native is not None
        response = from_chat(data, req.native, new_id())
        usage = data.get("usage")
        return Rendered(orjson.dumps(response), usage if isinstance(usage, dict) else None,
                        response["id"])

    def relay(self, req: FaceRequest, native: bool) -> Relay:
        if not native:
            assert req.native is not None
            return TranslatingRelay(StreamTranslator(req.native))
        on = _on_response
        return EventRelay(
            handlers={b"response.created": on, b"response.completed": on,
                      b"response.incomplete": on, b"response.failed": on},
            terminal=frozenset({b"response.completed", b"response.incomplete"}),
            failed=frozenset({b"response.failed", b"error"}), texts=_texts,
            text_events=frozenset({b"response.output_text.delta",
                                   b"response.function_call_arguments.delta",
                                   b"response.reasoning_text.delta",
                                   b"response.reasoning_summary_text.delta",
                                   b"response.refusal.delta"}),
            error=_error_event)

    async def pin(self, state: Any, req: FaceRequest, caller: Any) -> Mapping[str, str] | None:
        rid = req.previous_response_id
        if rid is None:
            return None
        try:
            home = await state.homes.lookup(rid)
        except Exception as exc:  # the store is down: say so, as a budget store outage does
            raise ServiceUnavailable(f"Cannot look up previous_response_id {rid!r}: the "
                                     f"gateway's store is unavailable ({type(exc).__name__}).",
                                     ) from None
        if home is None or home.key_alias != caller.alias:
            raise InvalidRequest(
                f"Previous response with id '{rid}' not found: this gateway did not relay it "
                "for this key, or it expired (30 days).", param="previous_response_id",
                code="previous_response_not_found")
        if not home.account:
            raise InvalidRequest(
                f"Previous response '{rid}' was answered by '{home.model}' without being stored "
                "upstream (store: false, or through translation to chat completions), so "
                "nothing can continue it: send the whole conversation in 'input' instead.",
                param="previous_response_id", code="previous_response_not_stored")
        why = (f"does not hold response {rid!r} (previous_response_id), which is stored with "
               f"the provider of '{home.model}'")
        out = {name: why for name in state.serving.chat_models
               if "responses" not in state.serving[name].apis
               or account(state.targets[name]) != home.account}
        return out

    async def completed(self, state: Any, req: FaceRequest, out: Any,
                        response_id: str | None) -> None:
        if response_id is None or out.served_by is None:
            return
        native = req.store and "responses" in state.serving[out.served_by].apis
        home = Home(out.served_by, account(state.targets[out.served_by]) if native else "",
                    out.caller.alias)
        try:
            await state.homes.remember(response_id, home)
        except Exception:  # the answer is served; only its continuation is lost
            log.exception("request_id=%s could not remember where response %s lives",
                          out.request_id, response_id)
