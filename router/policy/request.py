"""From a chat-completions body to :class:`RouteFacts`: the glue around the pure engine.

Used by ``POST /v1/route``, ``router route`` and (for the parts it needs) the pipeline. It counts
the prompt tokens once (see :func:`count_tokens` for which tokenizer), classifies the messages
(the classifier is passed in, so the engine never calls it), and reads ``model``,
``max_tokens``/``max_completion_tokens``, ``n`` and ``stream`` with the gateway's own checks.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from router.errors import InvalidRequest
from router.policy.compile import Policy
from router.policy.difficulty import estimate_request
from router.policy.engine import BudgetState, RouteDecision, RouteFacts, TaskGuess, evaluate
from router.policy.explain import explain_json, format_explain
from router.policy.schema import TASKS
from router.validate import check_chat

if TYPE_CHECKING:
    from router.auth import Caller

Classify = Callable[[Any], TaskGuess]

TASK_HEADER = "x-router-task"


def parse_task_header(value: str | None) -> str | None:
    """The ``x-router-task`` header: ``reasoning``, ``expression``, or absent/empty."""
    if value is None or not value.strip():
        return None
    task = value.strip().lower()
    if task not in TASKS:
        raise InvalidRequest(
            f"Header '{TASK_HEADER}' must be one of {', '.join(TASKS)}; got {value!r}.",
            param=TASK_HEADER,
        )
    return task


def counting_model(policy: Policy, requested: str) -> str | None:
    """Whose tokenizer counts the prompt before the choice: the model asked for (after
    rewrites) if it is a catalogue model, else the reference model, else the first chat model.

    One count serves every candidate (an approximation across tokenizer families, typically a
    few percent); the pipeline recounts exactly with the chosen model's tokenizer."""
    target = policy.rewrites.get(requested, requested)
    if target in policy.by_name:
        return target
    if policy.reference_model in policy.by_name:
        return policy.reference_model
    return policy.rows[0].name if policy.rows else None


def count_tokens(body: Mapping[str, Any], policy: Policy,
                 tokenizers: Mapping[str, str] | None = None) -> int:
    """Prompt tokens of ``body`` with the tokenizer of :func:`counting_model`.

    ``tokenizers`` maps model name -> tokenizer (``AppState.tokenizers``); without it the
    tokenizer is derived from the catalogue entry.
    """
    from router.tokens import count_chat_tokens, tokenizer_for

    model = counting_model(policy, str(body.get("model", "")))
    if model is None:
        return 0
    if tokenizers is not None and model in tokenizers:
        tokenizer = tokenizers[model]
    else:
        tokenizer = tokenizer_for(policy.catalogue[model].config)
    return count_chat_tokens(body, tokenizer)


def facts_from_body(
    body: dict[str, Any],
    prompt_tokens: int,
    *,
    classification: TaskGuess | None = None,
    caller: Caller | None = None,
    task_header: str | None = None,
) -> RouteFacts:
    """Facts of a chat-completions body (raises :class:`InvalidRequest` like the pipeline)."""
    return _facts(check_chat(body), prompt_tokens, classification, caller, task_header)


def _facts(checked: tuple[str, bool, int | None, int], prompt_tokens: int,
           classification: TaskGuess | None, caller: Caller | None, task_header: str | None,
           ) -> RouteFacts:
    """:func:`facts_from_body` of a body :func:`check_chat` already returned ``checked`` for."""
    model, stream, max_tokens, n = checked
    return RouteFacts(
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        n=n,
        classification=classification,
        task_override=parse_task_header(task_header),
        caller=caller,
        stream=stream,
    )


def load_classifier() -> tuple[Classify | None, str | None]:
    """The shipped classifier, or (None, why it cannot be loaded: no weights yet, ...)."""
    try:
        # Imported by name: the policy package does not depend on the classifier's code.
        model = importlib.import_module("router.classify.model")
        model.DEFAULT.load()
    except Exception as exc:  # missing weights, numpy, ...: routing works without it
        return None, f"{type(exc).__name__}: {exc}"
    classify: Classify = model.DEFAULT.classify
    return classify, None


def without_signals(classify: Classify | None) -> Classify | None:
    """The classifier without explanations, when it supports that (the request path's)."""
    if classify is None:
        return None
    try:
        if "explain" in inspect.signature(classify).parameters:
            return functools.partial(classify, explain=False)  # type: ignore[call-arg]
    except (TypeError, ValueError):
        pass
    return classify


def default_classifier() -> Classify | None:
    """The shipped classifier, or None when it cannot be loaded."""
    return load_classifier()[0]


@dataclass(frozen=True)
class Explained:
    """A decision with what produced it, ready for :func:`explain_json`."""

    decision: RouteDecision
    classification: TaskGuess | None
    signals: Sequence[str]
    #: What moved the difficulty estimate most (empty without one).
    difficulty_signals: Sequence[tuple[str, float]] = ()

    def json(self, policy: Policy | None = None) -> dict[str, Any]:
        return explain_json(self.decision, policy, signals=self.signals,
                            difficulty_signals=self.difficulty_signals)

    def text(self, policy: Policy | None = None) -> str:
        return format_explain(self.decision, policy, signals=self.signals,
                              difficulty_signals=self.difficulty_signals)


def facts_for_body(
    body: dict[str, Any],
    policy: Policy,
    *,
    classify: Classify | None = None,
    tokenizers: Mapping[str, str] | None = None,
    caller: Caller | None = None,
    task_header: str | None = None,
) -> RouteFacts:
    """Steps 1-2 for a chat body: check it, count its prompt, classify it (what
    :func:`route_body` and ``router eval replay`` decide from)."""
    checked = check_chat(body)  # before counting and classifying: they need a valid body
    tokens = count_tokens(body, policy, tokenizers)
    messages = body.get("messages")
    cls = classify(messages) if classify is not None else None
    difficulty = estimate_request(policy.difficulty, messages, cls)
    return replace(_facts(checked, tokens, cls, caller, task_header), difficulty=difficulty)


def route_body(
    body: dict[str, Any],
    policy: Policy,
    *,
    classify: Classify | None = None,
    tokenizers: Mapping[str, str] | None = None,
    caller: Caller | None = None,
    task_header: str | None = None,
    budget: BudgetState | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> Explained:
    """Count, classify and decide for a chat body, without calling any model.

    This is ``POST /v1/route``: ``route_body(body, policy, ...).json(policy)``. A request that
    could not be served is still explained (``decision.error`` is set, ``model`` is empty).
    """
    facts = facts_for_body(body, policy, classify=classify, tokenizers=tokenizers,
                           caller=caller, task_header=task_header)
    cls = facts.classification
    signals: Sequence[str] = tuple(getattr(cls, "signals", ()) or ())
    if cls is None:
        signals = ("classifier unavailable",)
    why: Sequence[tuple[str, float]] = ()
    rule = policy.difficulty
    if facts.difficulty is not None and rule is not None:
        from router.classify.messages import extract

        why = rule.estimator().contributions(extract(body.get("messages")).main)
    return Explained(evaluate(facts, policy, budget=budget, unavailable=unavailable or {}), cls,
                     signals, why)
