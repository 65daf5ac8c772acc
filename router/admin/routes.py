"""The admin HTTP API: gateway keys and spend reports, behind the admin key.

::

    POST   /admin/keys                  create a key; the secret is in this response only
    GET    /admin/keys                  list keys (config.yaml ones with source "config")
    GET    /admin/keys/{alias}          one key
    DELETE /admin/keys/{alias}          revoke (also POST /admin/keys/{alias}/revoke)
    GET    /admin/spend                 ledger report: period, since, until, group_by, filters
    GET    /admin/spend/check           budget counters of the current windows vs the ledger

Included in the app with ``api.include_router(admin_router)``. Handlers parse, call
:mod:`router.admin.keys` / :mod:`router.admin.spend`, and render; errors are
:class:`~router.errors.GatewayError` subclasses, rendered OpenAI-shaped by the app.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from router.admin import keys as admin_keys
from router.admin.auth import admin_key_env, check_admin_key
from router.admin.spend import (
    ReportError,
    parse_filters,
    parse_group_by,
    resolve_range,
    spend_check,
    spend_report,
)
from router.auth import request_credentials
from router.budgets.spec import GROUP_FIELDS
from router.errors import InvalidRequest, ServiceUnavailable
from router.validate import parse_json_object, read_body

if TYPE_CHECKING:
    from router.state import AppState


def _state(request: Request) -> AppState:
    # Imported here: router.app includes this router, so importing it at module level would be
    # circular. get_state also answers 503 while the gateway starts or stops.
    from router.app import get_state

    return get_state(request)


AdminState = Annotated["AppState", Depends(_state)]


def require_admin(request: Request, state: AdminState) -> None:
    check_admin_key(*request_credentials(request.headers), env_var=admin_key_env(state.config))


admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


# -- what the handlers need from AppState ---------------------------------------------------------


def _key_admin(state: AppState) -> admin_keys.DynamicKeys:
    keys = state.dynamic_keys
    if keys is None:
        raise ServiceUnavailable("Gateway keys cannot be managed here: no key store is set up.")
    return keys


def _known_models(state: AppState) -> set[str]:
    from router.decide import VIRTUAL_MODELS

    routes = state.policy.current.routes if state.policy is not None else VIRTUAL_MODELS
    return {*state.catalogue, *routes}


def _no_store(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


# -- keys -----------------------------------------------------------------------------------------


_MAX_KEY_BODY = 64 * 1024


@admin_router.post("/keys", status_code=201)
async def create_key(request: Request, state: AdminState) -> JSONResponse:
    keys = _key_admin(state)
    raw = await read_body(request, _MAX_KEY_BODY)
    fields = admin_keys.parse_key_request(parse_json_object(raw),
                                          known_models=_known_models(state))  # fmt: skip
    secret, rec = await admin_keys.create_key(keys, fields)
    body = {"object": "gateway_key", **admin_keys.record_json(rec), "key": secret,
            "note": "Store this key now: the gateway keeps only its hash."}  # fmt: skip
    return _no_store(body, 201)


@admin_router.get("/keys")
async def list_keys(state: AdminState) -> dict[str, Any]:
    data = await admin_keys.list_keys(state.dynamic_keys, state.config.auth.keys)
    return {"object": "list", "data": data}


@admin_router.get("/keys/{alias}")
async def get_key(alias: str, state: AdminState) -> dict[str, Any]:
    return await admin_keys.get_key(state.dynamic_keys, state.config.auth.keys, alias)


@admin_router.delete("/keys/{alias}")
@admin_router.post("/keys/{alias}/revoke")
async def revoke_key(alias: str, state: AdminState) -> dict[str, Any]:
    rec = await admin_keys.revoke_key(_key_admin(state), alias)
    return admin_keys.record_json(rec)


# -- spend ----------------------------------------------------------------------------------------

_SPEND_PARAMS = frozenset({"period", "since", "until", "group_by", *GROUP_FIELDS})


@admin_router.get("/spend")
async def spend(request: Request, state: AdminState) -> dict[str, Any]:
    store = state.store
    q = request.query_params
    for name in q:
        if name not in _SPEND_PARAMS:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name)
    try:
        rng = resolve_range(period=q.get("period"), since=q.get("since"), until=q.get("until"),
                            now=time.time(), tz=store.calendar.tz)  # fmt: skip
        group_by = parse_group_by(q.getlist("group_by"))
        filters = parse_filters({f: q.get(f) for f in GROUP_FIELDS})
    except ReportError as e:
        raise InvalidRequest(str(e), param=e.param) from None
    with admin_keys.store_errors():
        return await spend_report(store, rng, group_by, filters)


@admin_router.get("/spend/check")
async def spend_check_(state: AdminState) -> dict[str, Any]:
    store = state.store
    keys = _key_admin(state)
    with admin_keys.store_errors():
        return await spend_check(store, keys.store, time.time())
