"""Where ``config.yaml`` is: the lookup every command and the gateway share.

In order, the first that applies wins:

1. ``--config PATH`` on the command line;
2. ``$ROUTER_CONFIG``;
3. ``./config.yaml`` in the working directory;
4. the user's config directory: ``$XDG_CONFIG_HOME/federated-router/config.yaml``, else
   ``~/.config/federated-router/config.yaml`` (``router init`` writes one there);
5. the default config shipped inside the package (``router/defaults/``), so that a plain
   ``pip install`` runs with no file around.

A config found in 4 or 5 keeps its SQLite store (a relative ``sqlite:///./...`` url) in the
user's data directory, ``$XDG_DATA_HOME/federated-router`` (else
``~/.local/share/federated-router``), not wherever the command happens to run; any other config
reads a relative store path from the working directory, as it always has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

APP_DIR = "federated-router"
#: The package's own copy of the default config and policy (in a checkout: symlinks to
#: config.yaml and policies/default.yaml at the repository root, the one copy of each).
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"

Origin = Literal["--config", "ROUTER_CONFIG", "working directory", "user config directory",
                 "packaged default"]


@dataclass(frozen=True, slots=True)
class FoundConfig:
    """The config file a command uses, and which rule of the lookup chose it."""

    path: Path
    origin: Origin

    def describe(self) -> str:
        """``config.yaml (working directory)``: for start-up lines and error hints."""
        return f"{self.path} ({self.origin})"


def packaged_config_path() -> Path:
    return DEFAULTS_DIR / "config.yaml"


def packaged_policy_path() -> Path:
    return DEFAULTS_DIR / "policies" / "default.yaml"


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/federated-router``, else ``~/.config/federated-router``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME")
    return (Path(base) if base else _home(env) / ".config") / APP_DIR


def user_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/federated-router``, else ``~/.local/share/federated-router``."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME")
    return (Path(base) if base else _home(env) / ".local" / "share") / APP_DIR


def find_config(given: str | Path | None = None, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> FoundConfig:
    """The config file to use (see the module doc). ``given`` (``--config``) and
    ``$ROUTER_CONFIG`` are taken as they are, existing or not: reading them reports a missing
    file. The other places are used only if the file is there."""
    env = os.environ if env is None else env
    if given is not None and str(given):
        return FoundConfig(Path(given), "--config")
    if env.get("ROUTER_CONFIG"):
        return FoundConfig(Path(env["ROUTER_CONFIG"]), "ROUTER_CONFIG")
    here = (cwd or Path()) / "config.yaml"
    if here.is_file():
        return FoundConfig(Path("config.yaml") if cwd is None else here, "working directory")
    user = user_config_dir(env) / "config.yaml"
    if user.is_file():
        return FoundConfig(user, "user config directory")
    return FoundConfig(packaged_config_path(), "packaged default")


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def store_base(config_path: str | Path, env: Mapping[str, str] | None = None) -> Path | None:
    """Where a relative SQLite store path of the config at ``config_path`` is taken from:
    the user's data directory for the packaged default and for a config in the user's config
    directory; None (the working directory) for any other."""
    parent = Path(config_path).absolute().parent
    # the packaged copy is a symlink in a checkout: compare the link's directory, not its target
    if _same_dir(parent, DEFAULTS_DIR) or _same_dir(parent, user_config_dir(env)):
        return user_data_dir(env)
    return None


def rebase_sqlite_url(url: str, base: Path) -> str:
    """``sqlite:///./router-data/router.db`` -> ``sqlite:////<base>/router-data/router.db``; an
    absolute path, ``:memory:`` and other schemes are returned as they are."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix):].partition("?")
    if not path or path.startswith("/") or path == ":memory:":
        return url
    rebased = (base / path).as_posix().replace("/./", "/")
    return f"sqlite:///{rebased}{sep}{query}"
