"""The ledger's ``api`` field: new rows carry it, rows written before it read as ``chat``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson

from router.budgets.journal import decode_row, encode_row
from router.budgets.spec import LedgerRow
from router.budgets.sqlite import SqliteStore

OLD_SCHEMA = """CREATE TABLE ledger (
    request_id TEXT PRIMARY KEY, time REAL NOT NULL, key_alias TEXT, user TEXT, team TEXT,
    model TEXT NOT NULL, task TEXT, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, estimated_micro INTEGER NOT NULL,
    actual_micro INTEGER NOT NULL, reference_micro INTEGER NOT NULL, status TEXT NOT NULL)"""


def test_redis_rows_round_trip_and_old_rows_read_as_chat() -> None:
    row = LedgerRow("r1", "gpt-4o", "k", "u", "t", None, 10, 5, 7, 7, 9, "ok", 1.5, "messages")
    assert decode_row(encode_row(row)) == row
    old = orjson.dumps(["r0", "gpt-4o", "k", "u", "t", None, 1, 2, 3, 3, 4, "ok", 1.0])
    assert decode_row(old).api == "chat"


def test_an_sqlite_ledger_from_before_the_field_gets_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(OLD_SCHEMA)
        conn.execute("INSERT INTO ledger VALUES ('r0', 1.0, 'k', 'u', 't', 'gpt-4o', NULL, 1, 2, "
                     "3, 3, 4, 'ok')")
    store = SqliteStore(str(db))

    async def read() -> list[LedgerRow]:
        return [r async for r in store.iter_ledger(0, 1e11)]

    try:
        rows = asyncio.run(read())
        assert [r.api for r in rows] == ["chat"]
        spend = asyncio.run(store.ledger_query(0, 1e11, group_by=("api",)))
        assert [s.group for s in spend] == [{"api": "chat"}]
    finally:
        asyncio.run(store.close())
