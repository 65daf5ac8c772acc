"""config.yaml is parsed strictly; every error names the file, the line and the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from router.config import ConfigError, config_from_text, load_config
from tests.support import REPO

BASE = """\
routing:
  default_model: small
models:
  small:
    provider: openai
    upstream_model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY
"""


def problems(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "cfg.yaml", env or {})
    return str(info.value)


def test_default_config_loads() -> None:
    cfg = load_config(REPO / "config.yaml", env={})
    assert cfg.routing.default_model in cfg.models
    assert cfg.models["claude-sonnet-4-5"].api_path == "litellm"
    assert cfg.models["gpt-4o"].api_path == "openai"


def test_unknown_key_names_line_and_path() -> None:
    text = BASE + "    contxt_window: 1000\n"
    assert problems(text) == "cfg.yaml:8: models.small.contxt_window: unknown key"


def test_unknown_top_level_key() -> None:
    assert problems("modelz: {}\n" + BASE).startswith("cfg.yaml:1: modelz: unknown key")


def test_bad_value_names_line() -> None:
    text = BASE.replace("    api_key_env: OPENAI_API_KEY\n", "    max_retries: -1\n")
    msg = problems(text)
    assert msg.startswith("cfg.yaml:7: models.small.max_retries:"), msg
    assert "greater than or equal to 0" in msg


def test_unknown_fallback_and_default() -> None:
    text = BASE.replace("default_model: small", "default_model: big") + "    fallbacks: [nope]\n"
    msg = problems(text)
    assert "cfg.yaml:8: models.small.fallbacks[0]: unknown model 'nope'" in msg
    assert "cfg.yaml:2: routing.default_model: unknown model 'big'" in msg


def test_duplicate_key_is_an_error() -> None:
    msg = problems(BASE + "  small:\n    provider: openai\n    upstream_model: x\n")
    assert "cfg.yaml:8: models.small: duplicate key" in msg


def test_env_interpolation() -> None:
    text = BASE + "    api_base: ${BASE_URL:-http://127.0.0.1:9/v1}\n"
    assert config_from_text(text, "c", {}).models["small"].api_base == "http://127.0.0.1:9/v1"
    assert config_from_text(text, "c", {"BASE_URL": "https://x.test/v1"}).models["small"].api_base == "https://x.test/v1"
    msg = problems(BASE + "    api_base: ${NOT_SET_ANYWHERE}\n")
    assert "cfg.yaml:8: environment variable NOT_SET_ANYWHERE is not set" in msg


def test_invalid_yaml() -> None:
    assert problems("models: [\n").startswith("cfg.yaml:2: invalid YAML")


def test_key_needs_exactly_one_secret_source() -> None:
    msg = problems(BASE + "auth:\n  keys:\n    - {alias: a}\n")
    assert "auth.keys[0]: give exactly one of key_sha256 or key_env" in msg


def test_virtual_model_names_are_reserved() -> None:
    msg = problems(BASE + "  auto:\n    provider: openai\n    upstream_model: x\n")
    assert "'auto' is reserved" in msg


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(BASE + "    tokeniser: o200k_base\n")
    proc = run_cli("serve", "--config", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:8: models.small.tokeniser: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_refuses_dev_key_on_public_address() -> None:
    proc = run_cli("serve", "--config", str(REPO / "config.yaml"), "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2
    assert "sk-router-dev" in proc.stderr
