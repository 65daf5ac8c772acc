"""A stand-in for a gateway process, run by the multi-process tests:

    python -m tests.budgets.worker burst CONFIG_JSON   reserve N at once, settle the winners,
                                                       print {"ok": k}
    python -m tests.budgets.worker load CONFIG_JSON    reserve/settle forever with C tasks,
                                                       print "settled <id>" after each settle

CONFIG_JSON: {"url", "options", "limit", "cost", "n", "concurrency", "tag"}; or, instead of
"url" and "options", "config": a config.yaml whose store section opens the store as the gateway
does (router.state.open_budget_store).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from router.budgets import (
    BudgetExceeded,
    BudgetSpec,
    BudgetStore,
    LedgerRow,
    Period,
    Scope,
    open_store,
)
from router.config import load_config
from router.state import open_budget_store


def store_of(cfg: dict[str, Any]) -> BudgetStore:
    if "config" in cfg:
        return open_budget_store(load_config(cfg["config"], env={}))
    return open_store(cfg["url"], **cfg["options"])


def budgets(cfg: dict[str, Any]) -> list[BudgetSpec]:
    return [BudgetSpec(Scope.TEAM, "shared", Period.TOTAL, int(cfg["limit"]))]


async def burst(cfg: dict[str, Any]) -> None:
    store = store_of(cfg)
    b = budgets(cfg)
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other process

    async def one(i: int) -> bool:
        rid = f"{cfg['tag']}-{i}"
        try:
            r = await store.reserve(rid, b, cfg["cost"])
        except BudgetExceeded:
            return False
        await asyncio.sleep(0.001)
        await store.settle(r, cfg["cost"], LedgerRow(rid, "m", team="shared"))
        return True

    ok = await asyncio.gather(*(one(i) for i in range(cfg["n"])))
    print(json.dumps({"ok": sum(ok)}), flush=True)
    await store.close()


async def load(cfg: dict[str, Any]) -> None:
    store = store_of(cfg)
    b = budgets(cfg)
    counter = iter(range(10**9))

    async def loop() -> None:
        while True:
            rid = f"{cfg['tag']}-{next(counter)}"
            r = await store.reserve(rid, b, cfg["cost"])
            await asyncio.sleep(0.002)  # "the upstream call": reservations are held meanwhile
            res = await store.settle(r, cfg["cost"] // 2, LedgerRow(rid, "m", team="shared"))
            assert res.applied
            sys.stdout.write(f"settled {rid}\n")
            sys.stdout.flush()

    async def stuck() -> None:  # a request whose upstream never answers: killed while held
        await store.reserve(f"{cfg['tag']}-stuck", b, cfg["cost"])
        await asyncio.Event().wait()

    extra = [stuck()] if cfg.get("stuck") else []
    await asyncio.gather(*(loop() for _ in range(cfg["concurrency"])), *extra)


if __name__ == "__main__":
    mode, raw = sys.argv[1], sys.argv[2]
    asyncio.run({"burst": burst, "load": load}[mode](json.loads(raw)))
