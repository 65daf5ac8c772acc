"""The demo's own config: the default catalogue and policy, every model on the simulated upstream.

Built at run time from the config ``router serve`` would load by default (through
:func:`router.config.default_config_path`, wherever that file lives) into the demo's own
directory: its catalogue (prices, limits, tokenizers: as configured, unchanged), routing and
policy (copied), with each model's ``api_base`` pointing at the simulated upstream, a demo key
with a budget, and the store in the demo's directory, so a demo never touches a user's ledger.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router.config import Config, key_hash, load_config

#: The demo gateway's key (loopback only) and its budget.
DEMO_KEY = "sk-router-demo"
DEMO_ALIAS = "demo"
DEMO_BUDGET_USD = 1.0
#: The variable holding the (meaningless) key the gateway sends to the simulated upstream.
UPSTREAM_KEY_ENV = "ROUTER_DEMO_UPSTREAM_KEY"
UPSTREAM_KEY = "sk-simulated"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    path: Path
    config: Config
    #: Where the default config came from.
    source: str


def base_config() -> Config:
    """The config ``router serve`` loads by default (raises ConfigError, OSError)."""
    from router.config import default_config_path

    return load_config(default_config_path())


def tokenizers(cfg: Config) -> dict[str, str]:
    """Upstream model id -> the tokenizer the gateway counts it with."""
    from router.tokens import tokenizer_for

    return {m.upstream_model: tokenizer_for(m) for m in cfg.models.values()}


def _copy_policy(cfg: Config, directory: Path) -> str | None:
    if cfg.policy is None:
        return None
    from router.policy import default_policy_path

    src = default_policy_path(cfg)
    dest = directory / "policies" / src.name
    if dest.exists():
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copyfile(src, dest)
    return str(dest.relative_to(directory))


def write_demo_config(base: Config, directory: Path, upstream_url: str, port: int) -> DemoConfig:
    """Write ``directory/config.yaml`` (and the policy beside it) and load it back."""
    directory.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {}
    for name, model in base.models.items():
        entry = model.model_dump(mode="json", exclude_unset=True)
        entry.update(api_base=upstream_url, api_key_env=UPSTREAM_KEY_ENV, api="openai")
        entry.pop("extra_headers", None)
        if model.mode == "chat":
            entry["apis"] = ["chat"]  # other APIs reach it translated (the simulator: chat only)
        models[name] = entry
    doc: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "log_level": "warning",
                   "shutdown_grace_seconds": 5},
        "store": {"url": f"sqlite:///{(directory / 'router.db').resolve()}"},
        "auth": {"keys": [{"alias": DEMO_ALIAS, "key_sha256": key_hash(DEMO_KEY),
                           "user": "demo", "team": "demo",
                           "budget_usd": {"total": DEMO_BUDGET_USD}}]},
        "routing": base.routing.model_dump(mode="json", exclude_unset=True),
        "costs": base.costs.model_dump(mode="json", exclude_unset=True),
        "gpus": {k: v.model_dump(mode="json", exclude_unset=True) for k, v in base.gpus.items()},
        "policy": _copy_policy(base, directory),
        "models": models,
    }
    path = directory / "config.yaml"
    header = (f"# Written by `router demo` from {base.source}: every model is simulated at "
              f"{upstream_url}.\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return DemoConfig(path, load_config(path), str(Path(base.source).resolve()))
