"""Step 8, the record: one log line and the metrics of every request, errors included.

Called exactly once per request (for a stream, when it ends). Spend and token counters are
recorded where the cost is settled (:func:`spent`), so that Prometheus, the ledger and the budget
counters add up the same integer micro-dollars.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from router.errors import GatewayError
from router.metrics import Metrics, confidence_band

if TYPE_CHECKING:
    from router.budgets import LedgerRow
    from router.pipeline import Outcome
    from router.policy.difficulty import DifficultyGuess
    from router.upstream.dispatch import Attempt

log = logging.getLogger("router.request")


def finish(metrics: Metrics, out: Outcome, exc: GatewayError | None = None) -> None:
    """Log the request once, keyed by its request id (never a key or prompt text), and count it."""
    now = time.perf_counter()
    total = now - out.started
    status = exc.status_code if exc is not None else out.status
    decision = out.decision
    # a failed request is counted under the model it was meant for
    model = out.served_by or (decision.model if decision is not None else "none")
    task = decision.task if decision is not None and decision.task else "none"
    m = metrics
    m.child(m.requests, out.route, model, task, str(status)).inc()
    m.child(m.request_duration, out.route).observe(total)
    if out.upstream_seconds is not None:
        m.child(m.upstream_duration, model).observe(out.upstream_seconds)
        m.child(m.overhead, out.route).observe(max(0.0, total - out.upstream_seconds))
    if out.first_byte_at is not None:
        m.child(m.ttft, model).observe(out.first_byte_at - out.started)
    if decision is not None and out.served_by is not None and out.served_by != decision.model:
        m.child(m.fallbacks, decision.model, out.served_by).inc()
    ms = total * 1000
    if exc is not None:
        level = logging.ERROR if exc.status_code >= 500 else logging.WARNING
        log.log(level, "request_id=%s key=%s status=%d error=%s message=%r ms=%.1f",
                out.request_id, out.caller.alias, exc.status_code, exc.type, exc.message, ms)
    elif out.error is not None:
        log.warning("request_id=%s key=%s model=%s status=%d error=%r ms=%.1f",
                    out.request_id, out.caller.alias, out.served_by, out.status, out.error, ms)
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("request_id=%s key=%s model=%s prompt=%d completion=%d ms=%.1f",
                  out.request_id, out.caller.alias, out.served_by, out.prompt_tokens,
                  out.completion_tokens, ms)


def spent(metrics: Metrics, row: LedgerRow) -> None:
    """Tokens and money of a settled request (the same integers as its ledger row)."""
    m = metrics
    task = row.task or "none"
    m.child(m.prompt_tokens, row.model).inc(row.prompt_tokens)
    m.child(m.completion_tokens, row.model).inc(row.completion_tokens)
    team, key = row.team or "none", row.key_alias or "none"
    m.child(m.spend, row.model, team, key, task).inc(row.actual_micro)
    m.child(m.reference_spend, team, key, task).inc(row.reference_micro)


def classified(metrics: Metrics, task: str, confidence: float,
               difficulty: DifficultyGuess | None = None) -> None:
    band = difficulty.band if difficulty is not None else "none"
    metrics.child(metrics.classifications, task, confidence_band(confidence), band).inc()


def attempt(metrics: Metrics, a: Attempt, retry: bool) -> None:
    """One upstream attempt (the dispatcher's observer)."""
    if retry:
        metrics.child(metrics.retries, a.model).inc()
    if a.outcome != "ok":
        reason = a.outcome.replace(" ", "_")
        metrics.child(metrics.upstream_errors, a.model, reason).inc()


def circuit(metrics: Metrics, model: str, state: int, opened: bool) -> None:
    """A model's circuit changed state (router.upstream.health's observer)."""
    metrics.child(metrics.circuit_state, model).set(state)
    if opened:
        metrics.child(metrics.circuit_opened, model).inc()
        log.warning("model=%s circuit open: routing passes over it until a probe succeeds",
                    model)
    elif state == 0:
        log.info("model=%s circuit closed: a probe succeeded", model)
