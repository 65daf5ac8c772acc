"""The admin API over HTTP (httpx ASGI transport), on a minimal app that includes
``admin_router`` as the gateway does, with real stores (SQLite file / real redis-server)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from router.admin import DynamicKeys, admin_router
from router.app import error_response
from router.budgets import BudgetSpec, BudgetStore, LedgerRow, Period, Scope
from router.config import AuthConfig, Config, KeyConfig, ModelConfig
from router.errors import GatewayError
from tests.admin.conftest import KeyFactory
from tests.budgets.conftest import StoreFactory

ADMIN = "admin-secret-for-tests-0123456789"
HEADERS = {"authorization": f"Bearer {ADMIN}"}
CONFIG_KEY = KeyConfig(alias="local-dev", key_sha256="ab" * 32, user="dev", team="default",
                       budget_usd={"daily": 2}, requests_per_minute=10)


@dataclass
class MiniState:
    """The AppState fields the admin router reads."""

    config: Config
    store: BudgetStore
    dynamic_keys: DynamicKeys | None
    catalogue: dict[str, Any] = field(default_factory=lambda: {"gpt-4o-mini": None,
                                                               "gpt-4o": None})
    policy: None = None
    ready: bool = True


def mini_app(state: MiniState) -> FastAPI:
    api = FastAPI()
    api.include_router(admin_router)

    @api.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc)

    api.state.router = state
    return api


@dataclass
class Admin:
    client: httpx.AsyncClient
    state: MiniState


@pytest.fixture
async def admin(make_store: StoreFactory, make_key_store: KeyFactory,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Admin]:
    monkeypatch.setenv("ROUTER_ADMIN_KEY", ADMIN)
    cfg = Config(models={"gpt-4o-mini": ModelConfig(provider="openai",
                                                    upstream_model="gpt-4o-mini")},
                 auth=AuthConfig(keys=(CONFIG_KEY,)), policy=None)
    keys = DynamicKeys(make_key_store(), refresh_s=0.1, reserved_aliases={"local-dev"})
    state = MiniState(cfg, make_store(), keys)
    transport = httpx.ASGITransport(app=mini_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield Admin(client, state)


def assert_error(r: httpx.Response, status: int, type_: str, code: str | None = None,
                 param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err  # type: ignore[no-any-return]


# -- the admin key ----------------------------------------------------------------------------


async def test_admin_key_required(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    c = admin.client
    assert_error(await c.get("/admin/keys"), 401, "authentication_error", "invalid_api_key")
    wrong = await c.get("/admin/keys", headers={"authorization": "Bearer sk-not-the-admin-key"})
    err = assert_error(wrong, 401, "authentication_error")
    assert "sk-not-the-admin-key" not in wrong.text and ADMIN not in wrong.text
    gateway_key = await c.post("/admin/keys", json={"alias": "x"},
                               headers={"authorization": "Bearer sk-router-dev"})
    assert_error(gateway_key, 401, "authentication_error")
    assert (await c.get("/admin/keys", headers={"api-key": ADMIN})).status_code == 200
    monkeypatch.delenv("ROUTER_ADMIN_KEY")
    off = await c.get("/admin/keys", headers=HEADERS)
    err = assert_error(off, 401, "authentication_error")
    assert "ROUTER_ADMIN_KEY" in err["message"]
    for method, path in (("POST", "/admin/keys"), ("DELETE", "/admin/keys/a"),
                         ("GET", "/admin/spend"), ("GET", "/admin/spend/check")):
        assert (await c.request(method, path, headers=HEADERS)).status_code == 401


async def test_admin_key_env_comes_from_config(admin: Admin,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass
    class AdminCfg:
        key_env: str = "MY_ADMIN_KEY"

    object.__setattr__(admin.state.config, "admin", AdminCfg())  # as config.yaml's admin: section
    monkeypatch.setenv("MY_ADMIN_KEY", "other-admin")
    assert (await admin.client.get("/admin/keys", headers=HEADERS)).status_code == 401
    ok = await admin.client.get("/admin/keys", headers={"authorization": "Bearer other-admin"})
    assert ok.status_code == 200


# -- keys -------------------------------------------------------------------------------------


async def test_create_list_revoke(admin: Admin) -> None:
    c = admin.client
    body = {"alias": "app-prod", "user": "ann", "team": "search", "models": ["gpt-4o-mini"],
            "budget_usd": {"daily": 1.25, "monthly": "20"}, "requests_per_minute": 60,
            "tokens_per_minute": 100000}
    r = await c.post("/admin/keys", json=body, headers=HEADERS)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    created = r.json()
    secret = created["key"]
    assert secret.startswith("sk-router-") and len(secret) == 42
    assert created["budget_micro"] == {"daily": 1_250_000, "monthly": 20_000_000}
    assert created["budget_usd"] == {"daily": 1.25, "monthly": 20.0}
    digest = hashlib.sha256(secret.encode()).hexdigest()
    caller = admin.state.dynamic_keys.get(digest)  # type: ignore[union-attr]
    assert caller is not None and caller.alias == "app-prod"  # usable on this replica at once
    assert caller.budgets == (BudgetSpec(Scope.KEY, "app-prod", Period.DAILY, 1_250_000),
                              BudgetSpec(Scope.KEY, "app-prod", Period.MONTHLY, 20_000_000))

    listed = await c.get("/admin/keys", headers=HEADERS)
    assert listed.status_code == 200
    assert secret not in listed.text and digest not in listed.text
    assert CONFIG_KEY.key_sha256 not in listed.text  # type: ignore[operator]
    data = {k["alias"]: k for k in listed.json()["data"]}
    assert data["local-dev"]["source"] == "config"
    assert data["local-dev"]["budget_micro"] == {"daily": 2_000_000}
    assert data["local-dev"]["requests_per_minute"] == 10
    app = data["app-prod"]
    assert (app["source"], app["user"], app["team"], app["models"], app["revoked"]) == (
        "admin", "ann", "search", ["gpt-4o-mini"], False)
    assert app["created"] == pytest.approx(time.time(), abs=60)
    one = await c.get("/admin/keys/app-prod", headers=HEADERS)
    assert one.json() == app and secret not in one.text

    revoked = await c.delete("/admin/keys/app-prod", headers=HEADERS)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert admin.state.dynamic_keys.get(digest) is None  # type: ignore[union-attr]
    again = await c.post("/admin/keys/app-prod/revoke", headers=HEADERS)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    listed = (await c.get("/admin/keys", headers=HEADERS)).json()["data"]
    assert [k["revoked"] for k in listed if k["alias"] == "app-prod"] == [True]
    reuse = await c.post("/admin/keys", json={"alias": "app-prod"}, headers=HEADERS)
    assert_error(reuse, 409, "invalid_request_error", "key_exists", "alias")


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"user": "a"}, "alias", None),
    ({"alias": "bad alias"}, "alias", None),
    ({"alias": "a", "secret": "x"}, "secret", None),
    ({"alias": "a", "models": ["gpt-5-imaginary"]}, "models", "model_not_found"),
    ({"alias": "a", "models": "gpt-4o"}, "models", None),
    ({"alias": "a", "budget_usd": {"hourly": 1}}, "budget_usd.hourly", None),
    ({"alias": "a", "budget_usd": {"daily": -1}}, "budget_usd.daily", None),
    ({"alias": "a", "budget_usd": {"daily": "lots"}}, "budget_usd.daily", None),
    ({"alias": "a", "budget_usd": {"day": 1, "daily": 2}}, "budget_usd.daily", None),
    ({"alias": "a", "requests_per_minute": 0}, "requests_per_minute", None),
    ({"alias": "a", "tokens_per_minute": 1.5}, "tokens_per_minute", None),
    ({"alias": "a", "team": ""}, "team", None),
])
async def test_create_refuses_bad_bodies(admin: Admin, body: dict[str, Any], param: str,
                                         code: str | None) -> None:
    r = await admin.client.post("/admin/keys", json=body, headers=HEADERS)
    assert_error(r, 400, "invalid_request_error", code, param)
    assert (await admin.state.dynamic_keys.store.records()) == []  # type: ignore[union-attr]


async def test_create_and_revoke_edge_cases(admin: Admin) -> None:
    c = admin.client
    bad_json = await c.post("/admin/keys", content=b"{nope", headers=HEADERS)
    assert_error(bad_json, 400, "invalid_request_error", "invalid_json")
    huge = await c.post("/admin/keys", json={"alias": "a", "user": "u" * 70_000},
                        headers=HEADERS)
    assert_error(huge, 413, "invalid_request_error", "request_too_large")
    routes_ok = await c.post("/admin/keys", json={"alias": "r", "models": ["auto"]},
                             headers=HEADERS)
    assert routes_ok.status_code == 201
    cfg = await c.post("/admin/keys", json={"alias": "local-dev"}, headers=HEADERS)
    assert_error(cfg, 409, "invalid_request_error", "key_exists", "alias")
    assert_error(await c.delete("/admin/keys/local-dev", headers=HEADERS), 409,
                 "invalid_request_error", "key_read_only")
    assert_error(await c.delete("/admin/keys/nobody", headers=HEADERS), 404,
                 "invalid_request_error", "key_not_found")
    assert_error(await c.get("/admin/keys/nobody", headers=HEADERS), 404,
                 "invalid_request_error", "key_not_found")
    assert (await c.get("/admin/keys/local-dev", headers=HEADERS)).json()["source"] == "config"


async def test_without_a_key_store_keys_are_read_only(admin: Admin) -> None:
    admin.state.dynamic_keys = None
    assert_error(await admin.client.post("/admin/keys", json={"alias": "a"}, headers=HEADERS),
                 503, "service_unavailable")
    listed = await admin.client.get("/admin/keys", headers=HEADERS)
    assert [k["alias"] for k in listed.json()["data"]] == ["local-dev"]


# -- spend ------------------------------------------------------------------------------------


async def spend_some(store: BudgetStore, now: float) -> None:
    """Three settled requests and one failed one, in the current windows."""
    team = BudgetSpec(Scope.TEAM, "search", Period.DAILY, 10**9)
    key = BudgetSpec(Scope.KEY, "app", Period.MONTHLY, 10**9)
    glob = BudgetSpec(Scope.GLOBAL, "global", Period.TOTAL, 10**9)
    rows = [("r1", [team, key, glob], 1000, "search", "app", "gpt-4o-mini", "expression"),
            ("r2", [team, key, glob], 2500, "search", "app", "gpt-4o", "reasoning"),
            ("r3", [glob], 400, "ads", "other", "gpt-4o-mini", "expression")]
    for rid, budgets, cost, t, k, model, task in rows:
        r = await store.reserve(rid, budgets, 5000, now)
        await store.settle(r, cost, LedgerRow(rid, model, key_alias=k, user="ann", team=t,
                                              task=task, prompt_tokens=10, completion_tokens=20,
                                              reference_micro=cost * 3))
    r = await store.reserve("r4", [team, glob], 5000, now)
    await store.release(r, LedgerRow("r4", "gpt-4o", key_alias="app", team="search",
                                     status="error"))


async def test_spend_report(admin: Admin) -> None:
    now = time.time()
    await spend_some(admin.state.store, now)
    c = admin.client
    r = await c.get("/admin/spend", headers=HEADERS)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["period"] == "monthly" and rep["timezone"] == "UTC"
    assert rep["total"]["actual_micro"] == 3900 and rep["total"]["requests"] == 4
    assert rep["total"]["actual_usd"] == pytest.approx(0.0039)
    assert rep["total"]["savings_micro"] == 2 * 3900

    by_team = (await c.get("/admin/spend?period=day&group_by=team", headers=HEADERS)).json()
    assert [(d["group"]["team"], d["actual_micro"], d["requests"]) for d in by_team["data"]] == [
        ("search", 3500, 3), ("ads", 400, 1)]
    two = (await c.get("/admin/spend?group_by=team,model&group_by=task&team=search",
                       headers=HEADERS)).json()
    assert two["group_by"] == ["team", "model", "task"] and two["filters"] == {"team": "search"}
    assert {(d["group"]["model"], d["actual_micro"]) for d in two["data"]} == {
        ("gpt-4o", 2500), ("gpt-4o-mini", 1000), ("gpt-4o", 0)}
    by_key = (await c.get("/admin/spend?period=total&group_by=key&model=gpt-4o-mini",
                          headers=HEADERS)).json()
    assert {d["group"]["key"]: d["actual_micro"] for d in by_key["data"]} == {"app": 1000,
                                                                              "other": 400}
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    split = (await c.get(f"/admin/spend?since={now - 3 * 86400:.0f}&until={now + 86400:.0f}"
                         "&period=day", headers=HEADERS)).json()
    assert len({d["window"] for d in split["data"]}) == 1
    assert split["data"][0]["window"] == day and split["total"]["actual_micro"] == 3900
    open_end = (await c.get(f"/admin/spend?since={now - 3 * 86400:.0f}&period=day",
                            headers=HEADERS)).json()  # split up to today's end, not forever
    assert open_end["total"]["actual_micro"] == 3900
    assert open_end["until"] == time.strftime("%Y-%m-%dT00:00:00+00:00",
                                              time.gmtime(now + 86400))
    empty = (await c.get("/admin/spend?since=2001-01-01&until=2001-02-01",
                         headers=HEADERS)).json()
    assert empty["data"] == [] and empty["total"]["actual_micro"] == 0
    assert empty["since"] == "2001-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("query", "param"), [
    ("period=hour", "period"), ("group_by=secret", "group_by"), ("groupby=team", "groupby"),
    ("since=yesterday", "since"), ("since=2025-02-01&until=2025-01-01", "until"),
    ("until=2025-01-01&period=day", "since"),
    ("since=2000-01-01&until=2025-01-01&period=day", "period"),
])
async def test_spend_refuses_bad_queries(admin: Admin, query: str, param: str) -> None:
    r = await admin.client.get(f"/admin/spend?{query}", headers=HEADERS)
    assert_error(r, 400, "invalid_request_error", param=param)


async def test_spend_check_ledger_equals_counters(admin: Admin) -> None:
    store = admin.state.store
    now = time.time()
    await spend_some(store, now)
    r = await admin.client.get("/admin/spend/check", headers=HEADERS)
    assert r.status_code == 200, r.text
    check = r.json()
    assert check["ok"] is True and check["mismatches"] == 0
    got = {d["budget"]: (d["counter_micro"], d["ledger_micro"]) for d in check["data"]}
    assert got == {"team:search:daily": (3500, 3500), "key:app:monthly": (3500, 3500),
                   "global:global:total": (3900, 3900)}
    # a request of team search that did not reserve against the team's budget (as when a
    # budget is added mid-window): the counter now lags the ledger, and the check says so
    r5 = await store.reserve("r5", [], 0, now)
    await store.settle(r5, 700, LedgerRow("r5", "gpt-4o", team="search"))
    check = (await admin.client.get("/admin/spend/check", headers=HEADERS)).json()
    assert check["ok"] is False and check["mismatches"] == 2  # the team's and the global one
    bad = {d["budget"]: d["difference_micro"] for d in check["data"] if not d["ok"]}
    assert bad == {"team:search:daily": -700, "global:global:total": -700}
