"""Spend reports over the whole ledger: the hot store's rows, and the archive's for what was
trimmed. ``router spend``, ``GET /admin/spend`` and ``--check`` go through :class:`History`
when an archive is configured (``BudgetStore.history``).

A range the hot store still holds entirely (``since >= floor``: nothing at or after ``since``
was trimmed) is the hot store's own query, as before. An older one adds up, without double
counting, (1) the rows the hot store has not had acknowledged by the archive (``unexported``:
read first) and (2) the archive's rows, leaving out the request ids of (1). Every row is in one
of the two: a row not in (1) was acknowledged before (1) was read, hence archived before (2) is
read; a row in both is counted from (1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from router.budgets.errors import StoreUnavailable
from router.budgets.export.base import Archive, HotLedger
from router.budgets.rules import aggregate, check_fields
from router.budgets.spec import SpendRow
from router.budgets.store import BudgetStore


def merge(*reports: Sequence[SpendRow]) -> list[SpendRow]:
    """Add up reports grouped by the same fields."""
    acc: dict[tuple[tuple[str, str | None], ...], list[int]] = {}
    for report in reports:
        for r in report:
            a = acc.setdefault(tuple(r.group.items()), [0] * 6)
            for i, v in enumerate((r.requests, r.prompt_tokens, r.completion_tokens,
                                   r.estimated_micro, r.actual_micro, r.reference_micro)):
                a[i] += v
    out = [SpendRow(dict(k), *a) for k, a in acc.items() if a[0]]
    out.sort(key=lambda s: (-s.actual_micro, tuple(str(v) for v in s.group.values())))
    return out


class History:
    """The ledger of ``store`` (its hot rows through ``hot``) plus ``archive``."""

    def __init__(self, store: BudgetStore, hot: HotLedger, archive: Archive) -> None:
        self.store = store
        self.hot = hot
        self.archive = archive

    async def ledger_query(
        self,
        since: float,
        until: float,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendRow]:
        check_fields(group_by, filters)
        try:
            if since >= await self.hot.floor():
                return await self.store.ledger_query(since, until, group_by, filters)
            recent = await self.hot.unexported(since, until, filters)
        except self.hot.unavailable as e:
            raise StoreUnavailable(store=self.hot.kind, reason=f"{type(e).__name__}: {e}") from e
        try:
            archived = await self.archive.query(since, until, group_by, filters,
                                                exclude={r.request_id for r in recent})
        except self.archive.unavailable() as e:
            raise StoreUnavailable(store=f"ledger archive ({self.archive.kind})",
                                   reason=f"{type(e).__name__}: {e}") from e
        return merge(archived, aggregate(recent, group_by))
