"""A Kubernetes ConfigMap update reaches the running gateway without a restart.

The kubelet does not rewrite the files of a ConfigMap volume in place. It keeps them in a
timestamped directory and points to it through symlinks (AtomicWriter):

    /etc/router/policies/default.yaml -> ..data/default.yaml
    /etc/router/policies/..data       -> ..2026_01_02_03_04_05.000000001
    /etc/router/policies/..2026_01_02_03_04_05.000000001/default.yaml

An update writes a new timestamped directory, points a temporary symlink ``..data_tmp`` at it and
renames that over ``..data`` (one atomic rename(2): every file changes at once), then deletes
the old directory; keys added to the ConfigMap get a new top-level symlink. The policy reloader
(router/policy/reload.py) reads the directory's ``*.yaml`` every 0.5 s through those symlinks
and compares a digest of names and *contents*, never modification times (a symlink swap leaves
the top-level entries untouched), and skips the ``..data`` / ``..<timestamp>`` entries (not
``*.yaml`` files). These tests replay the kubelet's steps against a real PolicyReloader.
(A ``subPath`` mount would copy the file once and never see an update: deployment.yaml mounts
the directory; test_k8s.py checks that.)
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from router.config import Config
from router.policy.reload import PolicyReloader
from tests.gateway.conftest import POLICY, write_config

_stamp = itertools.count(1)


class ConfigMapVolume:
    """A directory laid out and updated the way the kubelet does it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.current: Path | None = None

    def publish(self, files: dict[str, str]) -> None:
        new = self.root / f"..2026_01_02_03_04_05.{next(_stamp):09d}"
        new.mkdir()
        for name, text in files.items():
            (new / name).write_text(text)
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(new.name)
        os.rename(tmp_link, self.root / "..data")  # the atomic swap
        for name in files:  # a new key gets its top-level symlink after the swap
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        for name in os.listdir(self.root):  # keys removed from the ConfigMap
            link = self.root / name
            if not name.startswith("..") and name not in files:
                link.unlink()
        if self.current is not None:
            for f in self.current.iterdir():
                f.unlink()
            self.current.rmdir()
        self.current = new


@pytest.fixture()
def config(tmp_path: Path) -> Config:
    from router.config import load_config

    (tmp_path / "cfg").mkdir()
    return load_config(write_config(tmp_path / "cfg", "http://127.0.0.1:9"))


def test_a_configmap_update_is_reloaded(tmp_path: Path, config: Config) -> None:
    vol = ConfigMapVolume(tmp_path / "policies")
    vol.publish({"default.yaml": POLICY})
    assert {e for e in os.listdir(vol.root) if e.startswith("..")} == {"..data",
                                                                         vol.current.name}
    reloader = PolicyReloader(vol.root, config)
    first = reloader.current
    assert reloader.check() is None  # nothing changed

    vol.publish({"default.yaml": POLICY.replace("min_capability: 60", "min_capability: 65")})
    event = reloader.check()
    assert event is not None and event.ok, event
    assert reloader.current is not first
    assert reloader.current.version != first.version
    assert reloader.check() is None

    # a key added to the ConfigMap: a second file, merged with the first
    vol.publish({"default.yaml": POLICY, "budgets.yaml":
                 "budgets:\n  teams:\n    search: {daily: {limit_usd: 5}}\n"})
    event = reloader.check()
    assert event is not None and event.ok, event
    assert reloader.current.spec.budgets.teams["search"]["daily"].limit_usd == 5
    # and a key removed from the ConfigMap disappears with the next swap
    vol.publish({"default.yaml": POLICY})
    event = reloader.check()
    assert event is not None and event.ok and not reloader.current.spec.budgets.teams


def test_a_bad_configmap_update_is_refused_and_the_running_policy_stays(
        tmp_path: Path, config: Config) -> None:
    vol = ConfigMapVolume(tmp_path / "policies")
    vol.publish({"default.yaml": POLICY})
    reloader = PolicyReloader(vol.root, config)
    good = reloader.current
    vol.publish({"default.yaml": POLICY + "no_such_section: 1\n"})
    event = reloader.check()
    assert event is not None and not event.ok
    assert "no_such_section" in (event.error or "")
    assert reloader.current is good
    vol.publish({"default.yaml": POLICY})  # rolled back: the same content as running
    event = reloader.check()
    assert event is not None and event.ok


def test_the_reloader_thread_picks_up_a_swap_within_its_interval(
        tmp_path: Path, config: Config) -> None:
    vol = ConfigMapVolume(tmp_path / "policies")
    vol.publish({"default.yaml": POLICY})
    reloader = PolicyReloader(vol.root, config, interval=0.05)
    reloader.start()
    try:
        before = reloader.current.version
        vol.publish({"default.yaml": POLICY.replace("min_capability: 40", "min_capability: 41")})
        deadline = time.monotonic() + 5
        while reloader.current.version == before:
            assert time.monotonic() < deadline, "the swap was not picked up"
            time.sleep(0.02)
        assert reloader.successes == 1 and reloader.failures == 0
    finally:
        reloader.stop()
