"""Where the config comes from: ``--config`` > ``$ROUTER_CONFIG`` > ``./config.yaml`` > the user
config directory > the packaged default; a store path of the last two lives in the user's data
directory; and every command works outside the checkout, with errors after its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import load_config
from router.configpath import (
    find_config,
    packaged_config_path,
    packaged_policy_path,
    rebase_sqlite_url,
    user_config_dir,
    user_data_dir,
)
from router.policy.compile import default_policy_path
from tests.cli.support import router, user_env
from tests.support import REPO


def _config(path: Path, port: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"server: {{port: {port}}}\npolicy: null\n"
                    "models:\n  m: {provider: openai, upstream_model: gpt-4o-mini}\n")
    return path


def test_the_lookup_order(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = {"HOME": str(home)}
    # nothing anywhere: the packaged default
    found = find_config(env=env, cwd=work)
    assert found.origin == "packaged default" and found.path == packaged_config_path()
    # the user config directory, then ./config.yaml, then $ROUTER_CONFIG, then --config
    user = _config(home / ".config" / "federated-router" / "config.yaml", 1001)
    assert find_config(env=env, cwd=work).path == user
    assert find_config(env=env, cwd=work).origin == "user config directory"
    here = _config(work / "config.yaml", 1002)
    assert find_config(env=env, cwd=work).path == here
    assert find_config(env=env, cwd=work).origin == "working directory"
    env["ROUTER_CONFIG"] = str(tmp_path / "elsewhere.yaml")  # taken as given, even if missing
    assert find_config(env=env, cwd=work).path == tmp_path / "elsewhere.yaml"
    assert find_config(env=env, cwd=work).origin == "ROUTER_CONFIG"
    given = find_config("given.yaml", env=env, cwd=work)
    assert given.path == Path("given.yaml") and given.origin == "--config"
    assert given.describe() == "given.yaml (--config)"
    # XDG_CONFIG_HOME moves the user config directory
    xdg = _config(tmp_path / "xdg" / "federated-router" / "config.yaml", 1003)
    env2 = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert user_config_dir(env2) == xdg.parent
    assert find_config(env=env2, cwd=tmp_path).path == xdg


def test_the_packaged_default_is_the_repository_copy() -> None:
    """One source of truth: router/defaults/ links to config.yaml and policies/default.yaml."""
    assert packaged_config_path().is_symlink() and packaged_policy_path().is_symlink()
    assert packaged_config_path().read_bytes() == (REPO / "config.yaml").read_bytes()
    assert packaged_policy_path().read_bytes() == (REPO / "policies/default.yaml").read_bytes()
    cfg = load_config(packaged_config_path(), env={})
    assert default_policy_path(cfg).read_bytes() == packaged_policy_path().read_bytes()


def test_store_paths_of_the_packaged_and_user_configs_are_in_the_data_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("ROUTER_STORE_URL", raising=False)
    data = tmp_path / ".local" / "share" / "federated-router"
    assert user_data_dir() == data
    packaged = load_config(packaged_config_path())
    assert packaged.store.url == f"sqlite:///{data}/router-data/router.db"
    user = user_config_dir() / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text(packaged_config_path().read_text())
    assert load_config(user).store.url == packaged.store.url
    # any other config keeps reading a relative path from the working directory
    assert load_config(REPO / "config.yaml").store.url == "sqlite:///./router-data/router.db"
    # an absolute path, or the environment's, is taken as it is
    monkeypatch.setenv("ROUTER_STORE_URL", "sqlite:////var/lib/router/router.db")
    assert load_config(packaged_config_path()).store.url == "sqlite:////var/lib/router/router.db"
    assert rebase_sqlite_url("sqlite:///:memory:", data) == "sqlite:///:memory:"
    assert rebase_sqlite_url("redis://r:6379/0", data) == "redis://r:6379/0"
    assert rebase_sqlite_url("sqlite:///db.sqlite?synchronous=full", Path("/d")) == \
        "sqlite:////d/db.sqlite?synchronous=full"


def test_commands_work_outside_the_checkout(tmp_path: Path) -> None:
    """The issue's report: ``cd /tmp && router models`` said ``config.yaml: cannot read``."""
    work = tmp_path / "work"
    work.mkdir()
    env = user_env(tmp_path / "home")
    models = router("models", cwd=work, env=env)
    assert models.returncode == 0, models.stderr
    assert "gpt-4o-mini" in models.stdout and "claude-sonnet-4-5" in models.stdout
    check = router("policy", "check", cwd=work, env=env)
    assert check.returncode == 0, check.stderr
    assert "default.yaml: ok" in check.stdout
    route = router("route", "hi", "--all-keys", "--json", cwd=work, env=env)
    assert route.returncode == 0, route.stderr
    assert '"object": "router.route"' in route.stdout
    assert not any(work.iterdir())  # nothing was written where the command ran


@pytest.mark.parametrize("argv", [["models"], ["route", "hi"], ["policy", "check"],
                                  ["spend"], ["ledger", "status"],
                                  ["cost", "request", "--model", "m", "--prompt-tokens", "9"]])
def test_a_missing_config_is_one_line_after_the_command_with_a_hint(
        tmp_path: Path, argv: list[str]) -> None:
    missing = tmp_path / "nope.yaml"
    env = user_env(tmp_path, ROUTER_CONFIG=str(missing))
    done = router(*argv, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"router {argv[0]}: error: {missing}: cannot read: ")
    assert "$ROUTER_CONFIG" in lines[0] and "router init" in lines[0]


def test_a_bad_config_is_a_line_per_problem_after_the_command(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("bogus: 1\nserver: {port: 0}\nmodels: {}\n")
    for argv in (["models"], ["route", "hi"], ["policy", "check"], ["spend"]):
        done = router(*argv, cwd=tmp_path, env=user_env(tmp_path))  # ./config.yaml
        assert done.returncode == 2, (argv, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 2, (argv, done.stderr)
        assert all(ln.startswith(f"router {argv[0]}: error: config.yaml:") for ln in lines)
        assert "config.yaml:1: bogus: unknown key" in done.stderr
