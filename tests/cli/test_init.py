"""``router init``: an editable copy of the default config and policy, found by the lookup, that
refuses to overwrite without ``--force``."""

from __future__ import annotations

from pathlib import Path

from router.configpath import packaged_config_path, packaged_policy_path
from tests.cli.support import router, user_env


def test_init_writes_to_the_user_config_dir_and_commands_then_read_it(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = user_env(home)
    done = router("init", cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    conf = home / ".config" / "federated-router"
    assert (conf / "config.yaml").read_bytes() == packaged_config_path().read_bytes()
    assert (conf / "policies" / "default.yaml").read_bytes() == \
        packaged_policy_path().read_bytes()
    data = home / ".local" / "share" / "federated-router"
    assert f"wrote {conf / 'config.yaml'}" in done.stdout
    assert f"sqlite:///{data}/router-data/router.db" in done.stdout
    # an edit of the copy is what the commands see: its policy, relative to it, is the copy's
    policy = conf / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("min_capability: 78", "min_capability: 101"))
    check = router("policy", "check", cwd=work, env=env)
    assert check.returncode == 1
    assert f"router policy: error: {policy}:" in check.stderr
    assert "tasks.reasoning.min_capability" in check.stderr
    assert all(ln.startswith("router policy: error: ") for ln in check.stderr.splitlines())


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    env = user_env(tmp_path / "home")
    target = tmp_path / "site"
    assert router("init", str(target), cwd=tmp_path, env=env).returncode == 0
    (target / "config.yaml").write_text("# mine\n")
    again = router("init", str(target), cwd=tmp_path, env=env)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.splitlines() == [
        f"router init: error: {target / 'config.yaml'}, {target / 'policies' / 'default.yaml'} "
        "already exist: --force overwrites"]
    assert (target / "config.yaml").read_text() == "# mine\n"
    forced = router("init", str(target), "--force", cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr
    assert (target / "config.yaml").read_bytes() == packaged_config_path().read_bytes()
    assert f"--config {target / 'config.yaml'}" in forced.stdout
    # the copy works from anywhere with --config; its relative store stays relative to the cwd
    check = router("policy", "check", "--config", str(target / "config.yaml"), cwd=tmp_path,
                   env=env)
    assert check.returncode == 0, check.stderr
    assert f"{target / 'policies' / 'default.yaml'}: ok" in check.stdout


def test_init_here_and_onto_a_file(tmp_path: Path) -> None:
    env = user_env(tmp_path / "home")
    done = router("init", ".", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "config.yaml: commands run in this directory read it" in done.stdout
    models = router("models", "--json", cwd=tmp_path, env=env)
    assert models.returncode == 0 and '"gpt-4o-mini"' in models.stdout
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = router("init", str(blocker), cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert bad.stderr == f"router init: error: {blocker} exists and is not a directory\n"
