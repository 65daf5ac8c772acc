"""Running the ``router`` command as a user does: a real process, in a directory and with a home
of its own (no config.yaml around unless the test puts one there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

#: Provider key variables of the default config: unset (empty) unless a test sets them.
KEY_VARS = ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with an empty home: no ROUTER_CONFIG, no XDG dirs, no keys."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ROUTER_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "PYTHONPATH")
           and k not in KEY_VARS}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), **extra)
    return env


def router(*argv: str, cwd: Path, env: dict[str, str],
           python_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``router ARGV`` in ``cwd``; ``python_path``: import the package from there instead."""
    if python_path is not None:
        env = {**env, "PYTHONPATH": str(python_path)}
    return subprocess.run([sys.executable, "-m", "router", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
