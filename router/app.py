"""``create_app()``: routes, the one error renderer, and the lifespan that builds AppState.

The hot endpoints (``POST /v1/chat/completions``, ``POST /v1/embeddings``) bypass FastAPI:
:class:`GatewayApp` sends them straight to a handler taking the raw request, because FastAPI's
middleware stack, routing and body handling cost about a fifth of the gateway's CPU per request
(measured with py-spy) for nothing these handlers use. Everything else is a FastAPI route with
typed dependencies. Handlers stay thin: parse, call :mod:`router.pipeline`, render.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from router import __version__, observe
from router.admin import admin_router
from router.budgets.export.service import LedgerService
from router.config import Config, CorsConfig, default_config_path, load_config
from router.decide import VIRTUAL_MODELS
from router.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    NothingCallable,
    ServiceUnavailable,
)
from router.faces import CHAT, COMPLETIONS, COUNT_TOKENS, MESSAGES, RESPONSES, Face
from router.faces.messages import CountTokensFace
from router.faces.serving import merged
from router.hotrequest import HotRequest
from router.metrics import render
from router.pipeline import Outcome, count_only, handle, handle_embeddings
from router.reachability import key_hint, startup_lines
from router.slow_bodies import BodyGuard
from router.state import AppState, build_state
from router.upstream.base import Transport
from router.validate import parse_json_object, read_body

log = logging.getLogger("router")


def _ready(state: AppState | None) -> AppState:
    if state is None or not state.ready:
        raise ServiceUnavailable("The gateway is starting up or shutting down.")
    return state


def get_state(request: Request) -> AppState:
    return _ready(getattr(request.app.state, "router", None))


State = Annotated[AppState, Depends(get_state)]


def error_response(exc: GatewayError, request_id: str | None = None,
                   face: Face | None = None) -> Response:
    """``exc`` as the client's API shapes errors (OpenAI's, or Anthropic's for Messages)."""
    headers = dict(exc.headers) if face is None else face.error_headers(exc)
    if request_id:
        headers["x-request-id"] = request_id
    body = exc.body() if face is None else face.error_body(exc)
    return Response(body, status_code=exc.status_code, media_type="application/json",
                    headers=headers)


def _request_id(request: Request | HotRequest, trust: bool) -> tuple[str, str]:
    """The request id (logs, ``x-request-id``) and the id its reservation and ledger row get.

    A trusted incoming ``x-request-id`` is only a correlation id: a client may send the same one
    twice (a retry is a second upstream call, to be charged again), while the budget store treats
    a repeated id as the same request. So the ledger id of such a request is the given id plus a
    minted suffix; a minted request id serves as both.
    """
    if trust:
        given = request.headers.get("x-request-id")
        if given and len(given) <= 128 and given.isascii() and given.isprintable():
            return given, f"{given}~{os.urandom(6).hex()}"
    minted = "req_" + os.urandom(16).hex()  # as random as uuid4().hex, without the UUID object
    return minted, minted


Endpoint = Callable[[Request | HotRequest], Awaitable[Response]]


def _proxy_endpoint(kind: str, current: Callable[[], AppState | None],
                    face: Face | None = None) -> Endpoint:
    """The handler of one API: ``face`` parses and renders it (None: embeddings)."""

    async def endpoint(request: Request | HotRequest) -> Response:
        started = time.perf_counter()
        state = current()
        trust = state.config.server.trust_request_id if state else True
        request_id, ledger_id = _request_id(request, trust)
        out: Outcome | None = None
        try:
            state = _ready(state)
            caller = state.keys.authenticate_request(request.headers)
            out = Outcome(request_id=request_id, caller=caller, started=started, route=kind,
                          ledger_id=ledger_id, api=kind)
            raw = await read_body(request, state.config.server.max_body_bytes)
            body = parse_json_object(raw)
            if face is None:
                response = await handle_embeddings(state, body, out)
            elif isinstance(face, CountTokensFace):
                response = await count_only(state, face, body, out, request.headers)
            else:
                response = await handle(state, face, body, out, request.headers)
            if response.media_type != "text/event-stream":  # a stream records itself at its end
                observe.finish(state.metrics, out)
            return response
        except GatewayError as exc:
            if out is not None and state is not None:
                if isinstance(exc, NothingCallable):
                    _nothing_callable(state, exc)
                observe.finish(state.metrics, out, exc)
            else:
                log.warning("request_id=%s status=%d error=%s message=%r",
                            request_id, exc.status_code, exc.type, exc.message)
            return error_response(exc, request_id, face)
        except Exception:
            log.exception("request_id=%s unexpected error", request_id)
            err = GatewayError(f"Internal error in the gateway (request id {request_id}).")
            return error_response(err, request_id, face)

    return endpoint


def _cors_app(app: ASGIApp, cors: CorsConfig) -> ASGIApp:
    """``app`` answering preflights and adding CORS headers for ``server.cors``'s origins."""
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(
        app, allow_origins=list(cors.allow_origins), allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=list(cors.allow_headers), expose_headers=list(cors.expose_headers),
        allow_credentials=cors.allow_credentials, max_age=cors.max_age_s)


class GatewayApp:
    """The ASGI app: hot POST paths go straight to their handler, the rest to FastAPI."""

    def __init__(self, api: FastAPI, hot: dict[str, Endpoint],
                 current: Callable[[], AppState | None]) -> None:
        self.api = api
        self.hot = hot
        self.current = current
        #: server.cors and the app answering with it (built once the config is known).
        self._cors: tuple[CorsConfig, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        state = self.current()
        cors = state.config.server.cors if state is not None else None
        if cors is not None:
            if self._cors is None or self._cors[0] is not cors:
                self._cors = (cors, _cors_app(self._serve, cors))
            await self._cors[1](scope, receive, send)
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.current()
        guard = None
        if state is not None:  # bodies get a deadline and a cap per client (slow_bodies.py)
            server = state.config.server
            guard = BodyGuard(scope, receive, send, state.pending_bodies,
                              timeout_s=server.body_timeout_s,
                              cap=server.max_pending_bodies_per_client)
            receive, send = guard.receive, guard.send
        try:
            if scope["method"] == "POST":
                endpoint = self.hot.get(scope["path"])
                if endpoint is not None:
                    response = await endpoint(HotRequest(scope, receive))
                    await response(scope, receive, send)
                    return
            await self.api(scope, receive, send)
        finally:
            if guard is not None:
                guard.release()


def create_app(
    config: Config | None = None,
    *,
    config_path: str | None = None,
    transports: dict[str, Transport] | None = None,
) -> GatewayApp:
    """Build the ASGI app. Give a ``Config``, or a path (default: the config lookup,
    :func:`router.configpath.find_config`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = config if config is not None else load_config(
            config_path or default_config_path()
        )
        state = build_state(cfg, transports=transports)
        app.state.router = state
        if state.policy is not None:
            state.policy.start()
            _on_sighup(state.policy.trigger)
        if state.dynamic_keys is not None:
            await state.dynamic_keys.start()
        gauges = asyncio.get_running_loop().create_task(_publish_budgets_forever(state))
        # The spend ledger's exporter (one elected per fleet) and its archive for reports.
        ledger = LedgerService.open(state.store, cfg.store)
        if ledger is not None:
            ledger.start()
        state.ready = True
        log.info("federated-router %s ready: %d models from %s", __version__, len(cfg.models),
                 cfg.source)
        for level, line in startup_lines(state.targets):
            log.log(level, line)
        try:
            yield
        finally:
            state.ready = False
            gauges.cancel()
            if ledger is not None:
                await ledger.aclose()
            await state.aclose()

    app = FastAPI(
        title="federated-router",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, only when server.api_docs is on
    )
    app.include_router(admin_router)

    def current() -> AppState | None:
        state: AppState | None = getattr(app.state, "router", None)
        return state

    chat = _proxy_endpoint("chat", current, CHAT)
    embeddings = _proxy_endpoint("embeddings", current)
    responses = _proxy_endpoint("responses", current, RESPONSES)
    messages = _proxy_endpoint("messages", current, MESSAGES)
    count_tokens = _proxy_endpoint("messages.count_tokens", current, COUNT_TOKENS)
    completions = _proxy_endpoint("completions", current, COMPLETIONS)
    hot = {"/v1/chat/completions": chat, "/chat/completions": chat,
           "/v1/embeddings": embeddings, "/embeddings": embeddings,
           "/v1/responses": responses, "/responses": responses,
           "/v1/messages": messages, "/v1/messages/count_tokens": count_tokens,
           "/v1/completions": completions, "/completions": completions}
    for path, endpoint in hot.items():  # also reachable through FastAPI (same handler)
        app.add_route(path, endpoint, methods=["POST"])

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        state: AppState | None = getattr(request.app.state, "router", None)
        if state is None or not state.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready", "models": len(state.targets)})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, state: State) -> Response:
        state.metrics_auth.check(request.headers)
        body, content_type = render(state.metrics)
        return Response(body, media_type=content_type)

    # The schema lists the admin API too: served only with server.api_docs (the config is read
    # in the lifespan, after the routes exist, hence the check per request).
    def api_docs(request: Request, state: AppState) -> None:
        if not state.config.server.api_docs:
            raise NotFound(f"Unknown path {request.url.path}.")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request, state: State) -> Response:
        api_docs(request, state)
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request, state: State) -> Response:
        api_docs(request, state)
        return get_swagger_ui_html(openapi_url="/openapi.json", title="federated-router")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request, state: State) -> Response:
        api_docs(request, state)
        return get_redoc_html(openapi_url="/openapi.json", title="federated-router")

    @app.get("/v1/models")
    async def list_models(request: Request, state: State) -> dict[str, Any]:
        state.keys.authenticate_request(request.headers)
        return {"object": "list", "data": _model_cards(state)}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request, state: State) -> dict[str, Any]:
        state.keys.authenticate_request(request.headers)
        for card in _model_cards(state):
            if card["id"] == model_id:
                return card
        raise NotFound(f"The model '{model_id}' does not exist.", param="model",
                       code="model_not_found")

    @app.post("/v1/route")
    async def explain_route(request: Request, state: State) -> Response:
        """Explain the routing decision for a chat-completions body, without calling a model."""
        from router.policy.request import route_body

        caller = state.keys.authenticate_request(request.headers)
        if state.policy is None:
            raise NotFound("No routing policy is loaded (config.yaml sets policy: null).")
        body = parse_json_object(await read_body(request, state.config.server.max_body_bytes))
        policy = state.policy.current
        req = CHAT.parse(body, request.headers)  # the same checks as the chat endpoint
        unavailable = merged(state.unavailable, state.serving.cannot_serve("chat", req))
        explained = route_body(body, policy, classify=state.classify, tokenizers=state.tokenizers,
                               caller=caller, task_header=request.headers.get("x-router-task"),
                               unavailable=unavailable)
        return Response(orjson.dumps(explained.json(policy)), media_type="application/json")

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc, request.headers.get("x-request-id"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(f"Method {request.method} is not allowed "
                                                   f"on {request.url.path}."))
        if exc.status_code == 404:
            return error_response(NotFound(f"Unknown path {request.url.path}."))
        err = GatewayError(str(exc.detail))
        return Response(err.body(), status_code=exc.status_code, media_type="application/json")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(GatewayError("Internal error in the gateway."))

    return GatewayApp(app, hot, current)


async def _publish_budgets_forever(state: AppState, every_s: float = 5.0) -> None:
    from router.accounting import publish_budgets

    while True:
        await asyncio.sleep(every_s)
        try:
            await publish_budgets(state.accountant, state.metrics)
        except Exception:  # never let the gauges kill the app; the next round tries again
            log.exception("publishing budget gauges failed")


def _on_sighup(callback: Callable[[], None]) -> None:
    """Reload the policy on SIGHUP (single-process serving; uvicorn's multi-worker supervisor
    restarts its workers on SIGHUP, which reloads the policy too)."""
    import signal

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        log.debug("SIGHUP reload not available here")


def _nothing_callable(state: AppState, exc: NothingCallable) -> None:
    """Routing found no model it may use callable now (keys unset, circuits open:
    ``state.unavailable``): retrying at once cannot help, so say so to the SDKs (which
    otherwise retry a 503 twice), and when to try again."""
    exc.headers.setdefault("x-should-retry", "false")
    hint = key_hint(state.targets, exc.models)
    if hint is not None and hint not in exc.message:
        exc.message = f"{exc.message} {hint}"
    wait = state.health.retry_in(state.unavailable)
    if wait is not None:
        exc.headers.setdefault("retry-after", str(max(1, math.ceil(wait))))


def _model_cards(state: AppState) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = []
    created = 1_700_000_000
    if state.policy is not None:
        routes = state.policy.current.routes
        virtual = [(name, {"virtual": True, "description": r.description})
                   for name, r in routes.items()]
    else:
        virtual = [(name, {"virtual": True}) for name in VIRTUAL_MODELS]
    for name, info in virtual:
        cards.append({"id": name, "object": "model", "created": created, "owned_by": "router",
                      "router": info})
    for name, priced in state.catalogue.items():
        meta = priced.metadata()
        del meta["id"]
        why = state.unavailable.get(name)
        meta["available"] = why is None
        meta["unavailable_reason"] = why
        if name in state.serving.serving:
            meta.update(state.serving[name].json())
        if state.health.enabled:
            meta["circuit"] = state.health.status(name)
        cards.append({"id": name, "object": "model", "created": created,
                      "owned_by": priced.config.provider, "router": meta})
    return cards


def app_from_env() -> GatewayApp:
    """Factory for ``uvicorn --factory`` and multi-worker serving (reads ``$ROUTER_CONFIG``)."""
    return create_app()
