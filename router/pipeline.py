"""The request flow, readable on one screen: tokens, decide, call, account, respond.

Steps 1-4 (count, classify, price, decide) are pure; steps 5-8 (reserve, call, settle, record)
go through small interfaces. Errors are raised as :mod:`router.errors` exceptions and rendered
by the app; a stream that fails after its first byte ends with an OpenAI-shaped error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.responses import Response

from router import observe
from router.accounting import Hold
from router.auth import Caller
from router.budgets import STATUS_DISCONNECTED, STATUS_ERROR, STATUS_OK, LedgerRow
from router.costs.estimate import actual_cost_micro, cost_micro, estimate_request_micro
from router.decide import Decision, decide_static
from router.errors import ContextTooLong, GatewayError, UpstreamError
from router.faces import serving as can_serve
from router.faces.base import Face, FaceRequest, Relay, Rendered
from router.faces.messages import CountTokensFace
from router.policy import (
    Policy,
    RouteDecision,
    RouteFacts,
    decide,
    decision_headers,
    reference_cost_micro,
)
from router.policy.difficulty import estimate_request
from router.policy.explain import usd6
from router.policy.request import counting_model, parse_task_header
from router.state import AppState
from router.streaming import EventStreamResponse
from router.tokens import (
    chat_prompt_bound,
    count_chat_tokens,
    count_embedding_input,
    count_text_tokens,
    embedding_input_bound,
)
from router.upstream.base import TransportError
from router.upstream.dispatch import Dispatched, Leg, Plan
from router.validate import check_embeddings

log = logging.getLogger("router.request")

#: Ledger status of a stream the upstream broke off: charged for what it generated.
STATUS_PARTIAL = "upstream_error"

JSON = "application/json"


@dataclass(slots=True)
class Outcome:
    """What happened to one request: the source of its headers, log line and ledger row."""

    request_id: str
    caller: Caller
    started: float
    #: The endpoint: ``chat`` or ``embeddings`` (a metrics label).
    route: str = "chat"
    #: The client API the request came through (the ledger's ``api``).
    api: str = "chat"
    #: The id of the request's reservation and ledger row: ``request_id``, unless that came
    #: from the client (see ``router.app._request_id``). Empty: ``request_id``.
    ledger_id: str = ""
    decision: Decision | RouteDecision | None = None
    served_by: str | None = None
    #: Counted by the gateway before the call (header ``x-router-prompt-tokens``).
    prompt_tokens: int = 0
    #: From the upstream's usage (or counted from the streamed text when it sent none).
    usage_prompt_tokens: int | None = None
    completion_tokens: int = 0
    #: Integer micro-dollars: expected before the call, and from the usage after it.
    estimate_micro: int | None = None
    actual_micro: int | None = None
    #: The budget reservation until it is settled or released.
    hold: Hold | None = None
    #: The routing policy that decided (None without one).
    policy: Policy | None = None
    #: Time spent on the upstream (to its last byte), and when the first byte was relayed.
    upstream_seconds: float | None = None
    upstream_started: float = 0.0
    first_byte_at: float | None = None
    attempts: int = 0
    status: int = 200
    error: str | None = None

    @property
    def store_id(self) -> str:
        """The id the budget store and the ledger know this request by."""
        return self.ledger_id or self.request_id

    def headers(self) -> dict[str, str]:
        h = {"x-request-id": self.request_id}
        if isinstance(self.decision, RouteDecision):
            h.update(decision_headers(self.decision))
        if self.served_by is not None:
            h["x-router-model"] = self.served_by
            if self.decision is not None and self.served_by != self.decision.model:
                h["x-router-fallback-from"] = self.decision.model
        if self.decision is not None and self.decision.task is not None:
            h["x-router-task"] = self.decision.task
            if self.decision.confidence is not None:
                h["x-router-task-confidence"] = f"{self.decision.confidence:.3f}"
        if self.prompt_tokens:
            h["x-router-prompt-tokens"] = str(self.prompt_tokens)
        if self.estimate_micro is not None:
            h["x-router-cost-estimate-usd"] = usd6(self.estimate_micro)
        if self.actual_micro is not None:
            h["x-router-cost-usd"] = usd6(self.actual_micro)
        if self.attempts:
            h["x-router-attempts"] = str(self.attempts)
        return h


def _usage_tokens(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (p if isinstance(p, int) else 0, c if isinstance(c, int) else 0)


def _context_check(state: AppState, model: str, prompt_tokens: int, max_tokens: int | None) -> None:
    window = state.catalogue[model].limits.context_window
    if window is None:
        return
    need = prompt_tokens + (max_tokens or 0)
    if need > window:
        raise ContextTooLong(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{need} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens or 0} in the completion).",
            param="messages",
        )


async def handle(state: AppState, face: Face, body: dict[str, Any], out: Outcome,
                 request_headers: Any) -> Response:
    """Steps 1-8 for one request of any face (chat, Responses, Messages, Completions)."""
    req = face.parse(body, request_headers)
    out.api = req.api
    unavailable = await can_serve.unavailable_for(state, face, req, out.caller)
    decision = can_serve.narrowed(state, unavailable, lambda: _decide(
        state, req.chat, out, request_headers, req.model, req.stream, req.max_tokens, req.n,
        unavailable))
    out.decision = decision
    _context_check(state, decision.model, out.prompt_tokens, req.max_tokens)
    _estimate(state, out, decision.model, req.max_tokens, req.n)

    hold = await state.accountant.reserve(
        out.store_id, out.caller, out.policy, state.catalogue[decision.model],
        out.prompt_tokens, req.max_tokens, req.n, decision.task,
        prompt_bound=chat_prompt_bound(req.chat, state.tokenizers[decision.model]),
    )
    out.hold = hold
    if hold.capped_output is not None:  # admitted on the expected output near a budget's end
        face.cap_output(req, hold.capped_output)
    dispatched = await _call(state, out, decision.chain, face.plan(state, req), req.stream)
    served = dispatched.target.name
    if served != decision.model:  # a fallback: its tokenizer may count the prompt differently
        if state.tokenizers[served] != state.tokenizers[decision.model]:
            out.prompt_tokens = count_chat_tokens(req.chat, state.tokenizers[served])
        _estimate(state, out, served, req.max_tokens, req.n)
    native = dispatched.leg is None or dispatched.leg.native
    if not req.stream:
        rendered = face.render(req, _json_answer(dispatched), dispatched.response.body, native)
        response = _complete(state, out, rendered)
        await _settle(state, out, STATUS_OK)
        await face.completed(state, req, out, rendered.response_id)
        return response
    relay = face.relay(req, native)

    async def never_started() -> None:  # the client left before the relay's first step
        out.status, out.error = 499, "client disconnected"
        await _end_relay(state, out, dispatched, relay)

    return EventStreamResponse(
        _relay(state, out, dispatched, relay, face, req),
        headers={**out.headers(), "cache-control": "no-cache", "x-accel-buffering": "no"},
        on_unstarted=never_started,
    )


async def count_only(state: AppState, face: CountTokensFace, body: dict[str, Any], out: Outcome,
                     request_headers: Any) -> Response:
    """Steps 1-4 only: the prompt tokens of a request as the model it would go to counts them
    (``/v1/messages/count_tokens``; nothing is called, reserved or charged)."""
    req = face.parse(body, request_headers)
    out.api = req.api
    unavailable = await can_serve.unavailable_for(state, face, req, out.caller)
    out.decision = can_serve.narrowed(state, unavailable, lambda: _decide(
        state, req.chat, out, request_headers, req.model, False, req.max_tokens, 1, unavailable))
    return Response(face.render_count(out.prompt_tokens), media_type=JSON, headers=out.headers())


def ledger_row(state: AppState, out: Outcome, status: str) -> LedgerRow:
    """The spend ledger's row for this request (costs in integer micro-dollars)."""
    decision = out.decision
    prompt = out.prompt_tokens if out.usage_prompt_tokens is None else out.usage_prompt_tokens
    actual = out.actual_micro if status != STATUS_ERROR and out.actual_micro is not None else 0
    reference = None
    if out.policy is not None and status != STATUS_ERROR:
        reference = reference_cost_micro(out.policy, prompt, out.completion_tokens)
    if reference is None:  # no reference model for it (embeddings, policy: null): saved nothing
        reference = actual
    caller = out.caller
    return LedgerRow(
        out.store_id, out.served_by or (decision.model if decision else ""), caller.alias,
        caller.user, caller.team, decision.task if decision is not None else None, prompt,
        out.completion_tokens, out.estimate_micro or 0, actual, reference, status, 0.0, out.api,
    )


async def _settle(state: AppState, out: Outcome, status: str) -> None:
    if out.hold is None:
        return
    hold, out.hold = out.hold, None
    row = ledger_row(state, out, status)
    overshoot = await state.accountant.settle(hold, out.actual_micro or 0, row)
    observe.spent(state.metrics, row)
    if overshoot:  # bounded by the plan; logged here, with the request id
        log.warning("request_id=%s settled %d µ$ above its reservation", out.request_id, overshoot)


async def _call(state: AppState, out: Outcome, chain: tuple[str, ...], plan: Plan | Leg,
                stream: bool) -> Dispatched:
    """Step 6: call the chain (retries, fallbacks), each model with the leg ``plan`` gives it
    (one leg: the same for all); on failure release the reservation with an error row. For a
    stream, ``upstream_seconds`` is completed when the stream ends."""
    started = out.upstream_started = time.perf_counter()
    try:
        if isinstance(plan, Leg):
            dispatched = await state.dispatcher.call(chain, plan.endpoint, plan.body, stream)
            dispatched.leg = plan
        else:
            dispatched = await state.dispatcher.call(chain, "chat/completions", {}, stream,
                                                     plan=plan)
    except BaseException as exc:  # release now (not when the hold expires), with an error row
        out.upstream_seconds = time.perf_counter() - started
        status = STATUS_ERROR
        if isinstance(exc, GatewayError):
            out.status, out.error = exc.status_code, exc.type
        elif isinstance(exc, asyncio.CancelledError):  # the client left
            out.status, out.error, status = 499, "client disconnected", STATUS_DISCONNECTED
        else:  # a bug
            out.status, out.error = 500, f"internal error: {type(exc).__name__}"
        if out.hold is not None:
            hold, out.hold = out.hold, None
            with anyio.CancelScope(shield=True):
                await state.accountant.release(hold, ledger_row(state, out, status))
        raise
    if not stream:
        out.upstream_seconds = time.perf_counter() - started
    out.served_by = dispatched.target.name
    out.attempts = len(dispatched.attempts)
    return dispatched


def _task_override(body: dict[str, Any], request_headers: Any) -> str | None:
    """``x-router-task`` header, else ``metadata.router_task`` in the body."""
    value = request_headers.get("x-router-task")
    if value is None:
        meta = body.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("router_task"), str):
            value = meta["router_task"]
    return parse_task_header(value)


def _decide(state: AppState, body: dict[str, Any], out: Outcome, request_headers: Any,
            requested: str, stream: bool, max_tokens: int | None, n: int,
            unavailable: Mapping[str, str]) -> Decision | RouteDecision:
    """Steps 1-4: count, classify, price, decide (pure apart from reading the current policy).

    The prompt is counted once with one tokenizer for the whole decision, then recounted
    exactly for the chosen model when its tokenizer differs.
    """
    override = _task_override(body, request_headers)
    if state.policy is None:
        static = decide_static(state.config, requested, out.caller)
        out.decision = static
        out.prompt_tokens = count_chat_tokens(body, state.tokenizers[static.model])
        return static
    policy = out.policy = state.policy.current
    counter = counting_model(policy, requested)
    tokenizer = state.tokenizers[counter] if counter is not None else "estimate"
    tokens = count_chat_tokens(body, tokenizer)
    messages = body["messages"]
    cls = state.classify_fast(messages) if state.classify_fast is not None else None
    difficulty = estimate_request(policy.difficulty, messages, cls)
    if cls is not None:
        observe.classified(state.metrics, cls.task, cls.confidence, difficulty)
    facts = RouteFacts(requested, tokens, max_tokens, n, cls, override, out.caller, stream,
                       difficulty)
    budgets = state.accountant.applicable(policy, out.caller)[0]
    decision = decide(facts, policy, budget=state.accountant.view.state(budgets),
                      unavailable=unavailable)
    out.decision = decision
    chosen = state.tokenizers[decision.model]
    out.prompt_tokens = tokens if chosen == tokenizer else count_chat_tokens(body, chosen)
    return decision


def _estimate(state: AppState, out: Outcome, model: str, max_tokens: int | None, n: int) -> None:
    priced = state.catalogue[model]
    task = out.decision.task if out.decision is not None else None
    one = estimate_request_micro(
        priced.price, out.prompt_tokens, max_tokens, task, state.config.costs,
        max_output_tokens=priced.limits.max_output_tokens,
    )
    if n > 1:  # n choices share the prompt; each generates its own completion
        one += (n - 1) * (one - cost_micro(priced.price, out.prompt_tokens, 0))
    out.estimate_micro = one


def _settle_cost(state: AppState, out: Outcome, usage: Any) -> None:
    if out.served_by is None:
        return
    price = state.catalogue[out.served_by].price
    if isinstance(usage, dict):
        out.actual_micro = actual_cost_micro(price, usage)
    else:
        prompt = out.prompt_tokens if out.usage_prompt_tokens is None else out.usage_prompt_tokens
        out.actual_micro = actual_cost_micro(
            price, {"prompt_tokens": prompt, "completion_tokens": out.completion_tokens})


def _json_answer(dispatched: Dispatched) -> Any:
    try:
        return orjson.loads(dispatched.response.body)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"{dispatched.target.name} returned a body that is not JSON", upstream_status=200
        ) from None


def _complete(state: AppState, out: Outcome, rendered: Rendered) -> Response:
    tokens = _usage_tokens(rendered.usage)
    if tokens is not None:
        out.usage_prompt_tokens, out.completion_tokens = tokens
    _settle_cost(state, out, rendered.usage)
    return Response(rendered.body, media_type=JSON, headers=out.headers())


async def _relay(
    state: AppState, out: Outcome, dispatched: Dispatched, relay: Relay, face: Face,
    req: FaceRequest,
) -> AsyncIterator[bytes]:
    response = dispatched.response
    assert response.stream is not None
    try:
        async for data in response.stream:
            chunk = relay.feed(data)
            if chunk:
                _first_byte(out)
                yield chunk
            if relay.holding:  # [DONE] held back: record the request before the client learns
                await _finish_stream(state, out, relay, STATUS_OK)  # that it completed
                await face.completed(state, req, out, relay.response_id)
                _first_byte(out)
                yield relay.release()
        if relay.upstream_failed:  # its own error event was relayed; charged for what ran
            out.status, out.error = 502, "upstream ended the stream with an error event"
        elif not relay.done:
            out.status, out.error = 502, "upstream ended the stream before its last event"
            yield relay.error_event(UpstreamError(f"{out.served_by} ended the stream early"))
    except TransportError as exc:
        out.status, out.error = 502, str(exc)
        yield relay.error_event(UpstreamError(f"{out.served_by} failed mid-stream: {exc}"))
    except BaseException:
        out.status, out.error = 499, "client disconnected"
        raise
    finally:
        await _end_relay(state, out, dispatched, relay)


def _first_byte(out: Outcome) -> None:
    """Stamp when the relay first sends the client something (the time-to-first-token metric)."""
    if out.first_byte_at is None:
        out.first_byte_at = time.perf_counter()


async def _end_relay(state: AppState, out: Outcome, dispatched: Dispatched,
                     relay: Relay) -> None:
    """Close the upstream stream, settle what has not been (charging what ran), record the
    request. A disconnect cancels the relay: this must still run to the end."""
    out.upstream_seconds = time.perf_counter() - out.upstream_started
    with anyio.CancelScope(shield=True):
        await dispatched.response.aclose()
        if out.hold is not None:  # not settled yet: failed or cut short, charge what ran
            status = STATUS_DISCONNECTED if out.status == 499 else STATUS_PARTIAL
            await _finish_stream(state, out, relay, status)
    observe.finish(state.metrics, out)


async def _finish_stream(state: AppState, out: Outcome, relay: Relay, status: str) -> None:
    tokens = _usage_tokens(relay.usage)
    if tokens is not None:
        out.usage_prompt_tokens, out.completion_tokens = tokens
    elif out.served_by is not None:
        tokenizer = state.tokenizers[out.served_by]
        out.completion_tokens = sum(count_text_tokens(t, tokenizer) for t in relay.generated_text())
    _settle_cost(state, out, relay.usage)
    await _settle(state, out, status)


async def handle_embeddings(state: AppState, body: dict[str, Any], out: Outcome) -> Response:
    requested = check_embeddings(body)
    if requested == "auto" and state.config.routing.default_embedding_model:
        requested = state.config.routing.default_embedding_model
    decision = decide_static(state.config, requested, out.caller, mode="embedding")
    out.decision = decision
    out.prompt_tokens = count_embedding_input(body.get("input"), state.tokenizers[decision.model])
    priced = state.catalogue[decision.model]
    out.estimate_micro = cost_micro(priced.price, out.prompt_tokens, 0)
    policy = state.policy.current if state.policy is not None else None
    out.hold = await state.accountant.reserve(
        out.store_id, out.caller, policy, priced, out.prompt_tokens, None, 1, None,
        prompt_bound=embedding_input_bound(body.get("input"), state.tokenizers[decision.model]))
    dispatched = await _call(state, out, decision.chain, Leg("embeddings", body), False)
    data = _json_answer(dispatched)
    usage = data.get("usage") if isinstance(data, dict) else None
    response = _complete(state, out, Rendered(dispatched.response.body,
                                              usage if isinstance(usage, dict) else None))
    await _settle(state, out, STATUS_OK)
    return response
