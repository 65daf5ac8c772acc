"""PostgreSQL as the ledger's archive: one table, indexed for the spend reports and the Grafana
dashboard (``deploy/grafana``), written with psycopg 3 (``pip install
'federated-router[postgres]'``; imported only when the target is PostgreSQL).

Each batch is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (request_id) DO NOTHING``
in its own transaction: the rows are durable when it commits, and a batch written again (the
exporter died between the commit and the hot store's acknowledgement) adds nothing. Rows keep
the hot store's order in ``export_seq`` (an identity column) and its id in ``source_id``.

Money stays in integer micro-dollars (``bigint``); ``ts`` is the request's reservation time,
the same instant the budget windows count it at.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from router.budgets.export.base import Archive, Entry
from router.budgets.rules import check_fields
from router.budgets.spec import SpendRow

log = logging.getLogger(__name__)

#: Report field -> column.
COLUMNS: Mapping[str, str] = {"team": "team", "user": "user_name", "key": "key_alias",
                              "model": "model", "task": "task", "status": "status",
                              "api": "api"}  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    request_id text PRIMARY KEY,
    ts timestamptz NOT NULL,
    key_alias text,
    user_name text,
    team text,
    model text NOT NULL,
    task text,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    estimated_micro bigint NOT NULL,
    actual_micro bigint NOT NULL,
    reference_micro bigint NOT NULL,
    status text NOT NULL,
    api text NOT NULL DEFAULT 'chat',
    source_id text NOT NULL,
    export_seq bigint GENERATED ALWAYS AS IDENTITY,
    exported_at timestamptz NOT NULL DEFAULT now()
);
-- tables created before the api column (the API a request came in by) get it
ALTER TABLE {t} ADD COLUMN IF NOT EXISTS api text NOT NULL DEFAULT 'chat';
CREATE INDEX IF NOT EXISTS {n}_ts ON {t} (ts);
CREATE INDEX IF NOT EXISTS {n}_team_ts ON {t} (team, ts);
CREATE INDEX IF NOT EXISTS {n}_key_ts ON {t} (key_alias, ts);
CREATE INDEX IF NOT EXISTS {n}_user_ts ON {t} (user_name, ts);
CREATE INDEX IF NOT EXISTS {n}_model_ts ON {t} (model, ts);
"""

_INSERT = """
INSERT INTO {t} (request_id, ts, key_alias, user_name, team, model, task, prompt_tokens,
                 completion_tokens, estimated_micro, actual_micro, reference_micro, status,
                 api, source_id)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[],
                     %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[])
ON CONFLICT (request_id) DO NOTHING
"""


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def redact(url: str) -> str:
    """``url`` without its password (for logs and errors)."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, cred = head.partition("://")
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in cred else url


class PostgresArchive(Archive):
    """The table ``table`` (created if missing) of the database at ``url``."""

    kind = "postgres"

    def __init__(self, url: str, table: str = "router_ledger", *,
                 connect_timeout_s: float = 5.0) -> None:  # fmt: skip
        self.url = url
        self.table = table
        self._name = table.rsplit(".", 1)[-1]
        self.connect_timeout_s = connect_timeout_s
        self._conns: dict[str, Any] = {}  # "write" / "read" -> AsyncConnection
        self._locks = {"write": asyncio.Lock(), "read": asyncio.Lock()}

    def unavailable(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (OSError, psycopg.OperationalError)

    async def _conn(self, role: str) -> Any:
        conn = self._conns.get(role)
        if conn is not None and not conn.closed:
            return conn
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s)),
            application_name=f"federated-router ledger {role}")
        await self._ensure_schema(conn)
        self._conns[role] = conn
        return conn

    async def _ensure_schema(self, conn: Any) -> None:
        import psycopg

        ddl = SCHEMA.format(t=self.table, n=self._name)
        for attempt in range(3):  # two processes creating it at once: one wins, retry
            try:
                async with conn.transaction():
                    await conn.execute(f"SELECT pg_advisory_xact_lock(hashtext('{self.table}'))")
                    await conn.execute(ddl)
                return
            except psycopg.errors.UniqueViolation:
                if attempt == 2:
                    raise

    async def _drop(self, role: str) -> None:
        conn = self._conns.pop(role, None)
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # already broken
                log.debug("closing a broken connection", exc_info=True)

    async def write(self, source: str, entries: Sequence[Entry]) -> int:
        if not entries:
            return 0
        cols: list[list[Any]] = [[] for _ in range(15)]
        for e in entries:
            r = e.row
            for i, v in enumerate((r.request_id, _ts(r.time), r.key_alias, r.user, r.team,
                                   r.model, r.task, r.prompt_tokens, r.completion_tokens,
                                   r.estimated_micro, r.actual_micro, r.reference_micro,
                                   r.status, r.api, e.id)):
                cols[i].append(v)
        async with self._locks["write"]:
            conn = await self._conn("write")
            try:
                async with conn.transaction():
                    cur = await conn.execute(_INSERT.format(t=self.table), cols)
                    return int(cur.rowcount)
            except BaseException:
                if conn.closed or conn.broken:
                    await self._drop("write")
                raise

    async def query(
        self,
        since: float,
        until: float,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[SpendRow]:
        check_fields(group_by, filters)
        cols = [COLUMNS[g] for g in group_by]
        where = ["l.ts >= %s", "l.ts < %s"]
        args: list[Any] = [_ts(max(0.0, since)), _ts(min(until, 1e11))]
        for k, v in (filters or {}).items():
            where.append(f"l.{COLUMNS[k]} = %s")
            args.append(v)
        if exclude:
            where.append("NOT EXISTS (SELECT 1 FROM unnest(%s::text[]) AS x(id) "
                         "WHERE x.id = l.request_id)")
            args.append(list(exclude))
        select = "".join(f"l.{c}, " for c in cols)
        group = f" GROUP BY {', '.join('l.' + c for c in cols)}" if cols else ""
        sql = (f"SELECT {select}count(*), sum(l.prompt_tokens), sum(l.completion_tokens), "
               f"sum(l.estimated_micro), sum(l.actual_micro), sum(l.reference_micro) "
               f"FROM {self.table} AS l WHERE {' AND '.join(where)}{group}")
        async with self._locks["read"]:
            conn = await self._conn("read")
            try:
                rows = await (await conn.execute(sql, args)).fetchall()
            except BaseException:
                if conn.closed or conn.broken:
                    await self._drop("read")
                raise
        n = len(cols)
        out = [SpendRow(group=dict(zip(group_by, r[:n], strict=True)), requests=int(r[n]),
                        prompt_tokens=int(r[n + 1] or 0), completion_tokens=int(r[n + 2] or 0),
                        estimated_micro=int(r[n + 3] or 0), actual_micro=int(r[n + 4] or 0),
                        reference_micro=int(r[n + 5] or 0))
               for r in rows if r[n]]  # fmt: skip
        out.sort(key=lambda s: (-s.actual_micro, tuple(str(v) for v in s.group.values())))
        return out

    async def count(self) -> tuple[int, int]:
        async with self._locks["read"]:
            conn = await self._conn("read")
            cur = await conn.execute(
                f"SELECT count(*), COALESCE(sum(actual_micro), 0) FROM {self.table}")
            n, s = await cur.fetchone()
        return int(n), int(s)

    async def close(self) -> None:
        for role in list(self._conns):
            await self._drop(role)
