"""Routing policy: ``policies/*.yaml`` parsed strictly, checked against the catalogue, and a
pure decision engine over it.

* :mod:`router.policy.schema` - the file's pydantic models and JSON Schema.
* :mod:`router.policy.compile` - loading, cross-checks with ``file:line: key`` errors, and the
  immutable :class:`Policy` with precomputed tables.
* :mod:`router.policy.engine` - :func:`decide` / :func:`evaluate`: (facts, policy and its
  catalogue, budget state) -> :class:`RouteDecision`.
* :mod:`router.policy.explain` - JSON for ``POST /v1/route``, the ``router route`` table,
  response headers.
* :mod:`router.policy.request` - chat body -> facts (token count, classification).
* :mod:`router.policy.reload` - :class:`PolicyReloader`: hot reload with atomic swap.

See docs/policy.md.
"""

from router.policy.compile import Policy, default_policy_path, load_policy, policy_from_text
from router.policy.engine import (
    BudgetState,
    Candidate,
    RouteDecision,
    RouteFacts,
    decide,
    evaluate,
    reference_cost_micro,
)
from router.policy.errors import PolicyError, RouteError
from router.policy.explain import decision_headers, explain_json, format_explain
from router.policy.reload import PolicyReloader, ReloadEvent
from router.policy.schema import BUILTIN_ROUTES, TASKS, json_schema

__all__ = [
    "BUILTIN_ROUTES",
    "TASKS",
    "BudgetState",
    "Candidate",
    "Policy",
    "PolicyError",
    "PolicyReloader",
    "ReloadEvent",
    "RouteDecision",
    "RouteError",
    "RouteFacts",
    "decide",
    "decision_headers",
    "default_policy_path",
    "evaluate",
    "explain_json",
    "format_explain",
    "json_schema",
    "load_policy",
    "policy_from_text",
    "reference_cost_micro",
]
