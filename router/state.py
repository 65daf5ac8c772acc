"""AppState: every long-lived object the request path needs, built once from the config.

Built in the app's lifespan and handed to handlers through ``request.app.state.router`` (see
:func:`router.app.get_state`); nothing lives in module globals. Building it never touches the
network: transports connect lazily on the first request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router import observe
from router.accounting import Accountant
from router.admin.keys import DynamicKeys, dynamic_keys_for
from router.auth import KeyRing, MetricsAuth
from router.budgets import BudgetStore, open_store
from router.capabilities import resolve_all
from router.config import Config, resolve_key_hashes
from router.costs.pricing import PricedModel, resolve_catalogue
from router.faces.homes import MemoryHomes, ResponseHomes, open_homes
from router.faces.serving import ServingTable
from router.metrics import Metrics
from router.policy import PolicyReloader, ReloadEvent, default_policy_path
from router.policy.request import Classify, load_classifier, without_signals
from router.slow_bodies import PendingBodies
from router.tokens import configure_offline, text_counter, tokenizer_for
from router.upstream.base import Target, Transport, build_target
from router.upstream.dispatch import Dispatcher
from router.upstream.health import Health, Unavailable

log = logging.getLogger("router")


@dataclass
class AppState:
    config: Config
    catalogue: dict[str, PricedModel]
    keys: KeyRing
    targets: dict[str, Target]
    tokenizers: dict[str, str]
    dispatcher: Dispatcher
    transports: dict[str, Transport]
    store: BudgetStore
    accountant: Accountant
    metrics: Metrics
    #: None when config.yaml sets ``policy: null``.
    policy: PolicyReloader | None = None
    #: None when the classifier's weights cannot be loaded (routing treats it as unsure).
    classify: Classify | None = None
    #: The same without explanations (~70 µs cheaper): the request path's classifier.
    classify_fast: Classify | None = None
    ready: bool = False
    #: Keys created through the admin API (also consulted by ``keys``).
    dynamic_keys: DynamicKeys | None = None
    #: Who may read GET /metrics (server.metrics_auth).
    metrics_auth: MetricsAuth = field(default_factory=lambda: MetricsAuth(None, required=False))
    #: Passive health of each model (circuits), fed by the dispatcher's attempts.
    health: Health = field(default_factory=lambda: Health(0, 1.0, 1.0))
    #: Models that cannot be called from here now (model -> why): their key variable is unset,
    #: or their circuit is open. Routes pass over them.
    unavailable: Mapping[str, str] = field(default_factory=dict)
    #: Requests per client address still waiting for their body (router/slow_bodies.py).
    pending_bodies: PendingBodies = field(default_factory=PendingBodies)
    #: What each chat model serves: APIs natively, images, tools, ... (router/capabilities.py).
    serving: ServingTable = field(default_factory=lambda: ServingTable({}, []))
    #: Where each relayed Responses-API response is stored (``previous_response_id``).
    homes: ResponseHomes = field(default_factory=MemoryHomes)

    async def aclose(self) -> None:
        if self.policy is not None:
            self.policy.stop()
        for transport in self.transports.values():
            await transport.aclose()
        await self.store.close()
        if self.dynamic_keys is not None:
            await self.dynamic_keys.aclose()
        await self.homes.aclose()


def build_state(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    transports: dict[str, Transport] | None = None,
) -> AppState:
    configure_offline()
    catalogue = resolve_catalogue(config)
    env_map = dict(os.environ if env is None else env)
    if transports is None:
        from router.upstream.litellm_path import LiteLLMTransport
        from router.upstream.openai_compat import OpenAICompatTransport

        transports = {"openai": OpenAICompatTransport(), "litellm": LiteLLMTransport()}
    targets = {name: build_target(name, m, env_map) for name, m in config.models.items()}
    tokenizers = {name: tokenizer_for(m) for name, m in config.models.items()}
    for tokenizer in set(tokenizers.values()):
        text_counter(tokenizer)  # load BPE files now, not on the first request
    server = config.server
    metrics = Metrics()
    cb = server.circuit_breaker
    health = Health(cb.failure_threshold, cb.cooldown_s, cb.max_cooldown_s,
                    on_change=lambda model, st, opened: observe.circuit(metrics, model, st, opened))
    if health.enabled:  # the series exist from the start, at 0 (closed)
        for name in config.models:
            metrics.child(metrics.circuit_state, name).set(0)
            metrics.child(metrics.circuit_opened, name)
    dispatcher = Dispatcher(
        targets,
        transports,
        backoff_base_s=server.retry_backoff_base_s,
        backoff_max_s=server.retry_backoff_max_s,
        observer=lambda a, retry: observe.attempt(metrics, a, retry),
        health=health,
    )
    keys = KeyRing(resolve_key_hashes(config, env_map), require_key=config.auth.require_key)
    policy = None
    if config.policy is not None:  # raises PolicyError (file:line: key) on a bad policy
        policy = PolicyReloader(default_policy_path(config), config, catalogue)
        policy.listeners.append(lambda event: _reloaded(metrics, event))
    store = open_budget_store(config)
    dynamic_keys = dynamic_keys_for(config)
    keys.dynamic = dynamic_keys
    classify, why = load_classifier()
    if classify is None:
        log.warning("classifier unavailable (%s): routing treats every request as unsure", why)
    return AppState(
        config=config,
        catalogue=catalogue,
        keys=keys,
        targets=targets,
        tokenizers=tokenizers,
        dispatcher=dispatcher,
        transports=transports,
        store=store,
        accountant=Accountant(store, config, metrics),
        metrics=metrics,
        policy=policy,
        classify=classify,
        classify_fast=without_signals(classify),
        dynamic_keys=dynamic_keys,
        health=health,
        metrics_auth=_metrics_auth(config, env_map),
        serving=ServingTable(resolve_all(config), config.chat_models()),
        homes=open_homes(config.store.url),
        unavailable=Unavailable(
            {name: f"{t.missing_key} is not set in the gateway's environment"
             for name, t in targets.items() if t.missing_key}, health),
    )


def _metrics_auth(config: Config, env: Mapping[str, str]) -> MetricsAuth:
    settings = config.server.metrics_auth
    if settings is None:
        return MetricsAuth(None, required=False)
    token = env.get(settings.token_env) or None
    if token is None:
        log.warning("server.metrics_auth: %s is not set: every GET /metrics is refused (401)",
                    settings.token_env)
    return MetricsAuth(token, required=True, token_env=settings.token_env)


def open_budget_store(config: Config) -> BudgetStore:
    """The configured budget store (nothing connects until the first request)."""
    sc = config.store
    options: dict[str, Any] = {}
    if not sc.url.startswith("sqlite"):
        options["lease_fraction"] = sc.lease_fraction
        if sc.lease_ttl_s is not None:
            options["lease_ttl_s"] = sc.lease_ttl_s
        if sc.journal_path:
            options["journal_path"] = sc.journal_path
    return open_store(sc.url, timezone=sc.timezone, fail_mode=sc.fail_mode,
                      reservation_ttl_s=sc.reservation_ttl_s, **options)


def _reloaded(metrics: Metrics, event: ReloadEvent) -> None:
    metrics.child(metrics.policy_reloads, "ok" if event.ok else "error").inc()
    if not event.ok:
        log.error("policy reload refused, the running policy stays:\n%s", event.error)
