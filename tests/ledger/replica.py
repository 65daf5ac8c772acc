"""A stand-in for one gateway replica of a fleet, run by tests/ledger/test_fleet.py: it settles
requests into the shared Redis store (the gateway's settle path) while its ledger exporter runs,
as in the gateway's lifespan.

    python -m tests.ledger.replica CONFIG_JSON

CONFIG_JSON: {"redis", "prefix", "pg" (database url), "n", "concurrency", "tag", "lead"
("elected": the fleet's election, lock TTL "lock_ttl_s"; "always": no election), "batch",
"interval_s", "retain_hot_s"}. Prints "settled <n>" when its requests are done, then waits for
the stream's backlog to reach 0 (whoever exports it) and prints its exporter's stats as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from router.budgets import BudgetSpec, LedgerRow, Period, Scope, open_store
from router.budgets.export.base import AlwaysLeader, Leader
from router.budgets.export.election import RedisLeader
from router.budgets.export.service import LedgerService
from router.config import LedgerConfig, StoreConfig

BUDGET = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**15)]


def cost_of(tag: str, i: int) -> int:
    return 1000 + (i * 7919 + len(tag)) % 5000


async def main(cfg: dict[str, Any]) -> None:
    store = open_store(cfg["redis"], prefix=cfg["prefix"], settle_dedup_s=3600.0)
    store_cfg = StoreConfig(url=cfg["redis"], ledger=LedgerConfig(
        export="postgres", url=cfg["pg"], retain_hot=cfg.get("retain_hot_s", 0),
        batch=cfg.get("batch", 50), interval_s=cfg.get("interval_s", 0.05)))
    leader: Leader = AlwaysLeader()
    if cfg["lead"] == "elected":
        leader = RedisLeader(store.client, store.key_prefix, ttl_s=cfg.get("lock_ttl_s", 2.0))
    svc = LedgerService.open(store, store_cfg, leader=leader)
    assert svc is not None
    svc.start()
    sem = asyncio.Semaphore(cfg.get("concurrency", 20))

    async def one(i: int) -> None:
        rid = f"{cfg['tag']}-{i}"
        async with sem:
            r = await store.reserve(rid, BUDGET, 10_000)
            c = cost_of(cfg["tag"], i)
            await store.settle(r, c, LedgerRow(rid, "m", key_alias=cfg["tag"], team="t",
                                               prompt_tokens=1, completion_tokens=1))

    await asyncio.gather(*(one(i) for i in range(cfg["n"])))
    print(f"settled {cfg['n']}", flush=True)
    while await svc.hot.backlog():
        await asyncio.sleep(0.05)
    total = svc.exporter.total
    await svc.aclose()
    await store.close()
    print(json.dumps({"exported": total.exported, "new": total.new, "batches": total.batches}),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
