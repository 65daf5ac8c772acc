"""A non-editable install: setuptools builds the package as the wheel gets it (``build_py``,
offline), and the commands run from that copy in an empty directory, with no config.yaml around:
the default config and policy ship inside the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.support import router, user_env
from tests.support import REPO


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = tmp_path_factory.mktemp("build") / "lib"
    src = tmp_path_factory.mktemp("src")
    # a copy of the sources, so the build leaves nothing in the checkout
    for name in ("pyproject.toml", "README.md", "config.yaml"):
        shutil.copy(REPO / name, src / name)
    (src / "policies").mkdir()
    shutil.copy(REPO / "policies" / "default.yaml", src / "policies" / "default.yaml")
    shutil.copytree(REPO / "router", src / "router", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q",
                           "build_py", "-d", str(lib)], cwd=src, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return lib


def test_the_package_carries_the_default_config_and_policy(built: Path) -> None:
    config = built / "router" / "defaults" / "config.yaml"
    policy = built / "router" / "defaults" / "policies" / "default.yaml"
    assert not config.is_symlink() and not policy.is_symlink()
    assert config.read_bytes() == (REPO / "config.yaml").read_bytes()
    assert policy.read_bytes() == (REPO / "policies" / "default.yaml").read_bytes()


def test_commands_run_from_the_installed_package(built: Path, tmp_path: Path) -> None:
    env = user_env(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    models = router("models", cwd=work, env=env, python_path=built)
    assert models.returncode == 0, models.stderr
    assert "claude-sonnet-4-5" in models.stdout
    route = router("route", "hi", cwd=work, env=env, python_path=built)
    assert route.returncode == 0, route.stderr
    assert "keys: as a gateway started with this environment" in route.stdout
    check = router("policy", "check", cwd=work, env=env, python_path=built)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"{built / 'router' / 'defaults' / 'policies' / 'default.yaml'}"
                                   ": ok")
    init = router("init", cwd=work, env=env, python_path=built)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "home" / ".config" / "federated-router" / "config.yaml").read_bytes() == \
        (REPO / "config.yaml").read_bytes()
    assert not any(work.iterdir())
