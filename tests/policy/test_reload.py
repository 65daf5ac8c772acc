"""Hot reload: edits are live within 2 s, bad edits are refused and the running policy kept,
and readers during reloads only ever see whole policies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.config import Config
from router.costs.pricing import PricedModel
from router.policy import PolicyError, PolicyReloader, ReloadEvent, RouteFacts, evaluate
from tests.policy.conftest import POLICY, Guess
from tests.support import wait_until

A = POLICY + "description: A\n"
B = POLICY.replace("reasoning: {min_capability: 70}", "reasoning: {min_capability: 85}") \
    + "description: B\n"
BAD = POLICY.replace("min_capability: 70", "min_capabilty: 70")


@pytest.fixture
def reloader(tmp_path: Path, cfg: Config, cat: dict[str, PricedModel]
             ) -> Iterator[PolicyReloader]:
    path = tmp_path / "policy.yaml"
    path.write_text(A)
    r = PolicyReloader(path, cfg, cat)  # default interval: 0.5 s
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_an_edit_is_live_within_two_seconds(reloader: PolicyReloader) -> None:
    events: list[ReloadEvent] = []
    reloader.listeners.append(events.append)
    old = reloader.current
    assert old.spec.description == "A"
    reloader.path.write_text(B)
    took = wait_until(lambda: reloader.current.spec.description == "B", 2.0)
    assert took < 2.0
    wait_until(lambda: bool(events), 2.0)  # listeners run right after the swap
    assert reloader.successes == 1 and reloader.failures == 0
    assert events[-1].ok and events[-1].trigger == "poll"
    assert events[-1].version == reloader.current.version != old.version
    # Same content again: nothing to do.
    time.sleep(0.7)
    assert reloader.successes == 1


def test_an_invalid_edit_is_refused_and_the_running_policy_kept(
    reloader: PolicyReloader,
) -> None:
    good = reloader.current
    reloader.path.write_text(BAD)
    wait_until(lambda: reloader.failures == 1, 2.0)
    assert reloader.current is good
    assert reloader.last_error is not None
    assert f"{reloader.path}:3: tasks.reasoning.min_capabilty: unknown key" in reloader.last_error
    assert reloader.last_event is not None and not reloader.last_event.ok
    time.sleep(0.7)
    assert reloader.failures == 1  # the same bad content is not retried every poll
    reloader.path.write_text(B)
    wait_until(lambda: reloader.current.spec.description == "B", 2.0)
    assert reloader.last_error is None and reloader.successes == 1


def test_a_deleted_file_keeps_the_policy_and_comes_back(reloader: PolicyReloader) -> None:
    good = reloader.current
    reloader.path.unlink()
    wait_until(lambda: reloader.failures == 1, 2.0)
    assert reloader.current is good and "cannot read" in (reloader.last_error or "")
    reloader.path.write_text(B)
    wait_until(lambda: reloader.current.spec.description == "B", 2.0)


def test_trigger_and_reload_force_a_reload(reloader: PolicyReloader) -> None:
    events: list[ReloadEvent] = []
    reloader.listeners.append(events.append)
    reloader.trigger()  # what the SIGHUP handler calls
    wait_until(lambda: bool(events), 2.0)
    assert reloader.successes == 1
    assert events[-1].trigger == "signal" and events[-1].ok
    event = reloader.reload()
    assert event.ok and event.trigger == "manual" and reloader.successes == 2
    reloader.path.write_text(BAD)
    event = reloader.reload()
    assert not event.ok and "unknown key" in (event.error or "")
    assert reloader.current.spec.description == "A"


def test_invalid_policy_at_start_raises(tmp_path: Path, cfg: Config,
                                        cat: dict[str, PricedModel]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BAD)
    with pytest.raises(PolicyError):
        PolicyReloader(path, cfg, cat)


def test_a_directory_is_watched(tmp_path: Path, cfg: Config, cat: dict[str, PricedModel]) -> None:
    (tmp_path / "base.yaml").write_text(POLICY)
    r = PolicyReloader(tmp_path, cfg, cat, interval=0.1)
    r.start()
    try:
        (tmp_path / "rewrites.yaml").write_text("rewrites:\n  gpt-4: big\n")
        wait_until(lambda: r.current.rewrites == {"gpt-4": "big"}, 2.0)
        assert r.stats()["reloads_ok"] == 1
    finally:
        r.stop()


def test_readers_during_reloads_only_see_whole_policies(
    tmp_path: Path, cfg: Config, cat: dict[str, PricedModel]
) -> None:
    """Readers decide non-stop while a writer flips the file between A and B (with a bad,
    half-written state in between). Every decision must match one whole policy: A routes
    reasoning to mid with bar 70, B to think with bar 85. No reader may ever fail."""
    path = tmp_path / "policy.yaml"
    path.write_text(A)
    r = PolicyReloader(path, cfg, cat, interval=0.02)
    r.start()
    expected = {"A": ("mid", 70), "B": ("think", 85)}
    facts = RouteFacts("auto", 100, classification=Guess("reasoning", 0.9))
    stop = threading.Event()
    seen: dict[str, int] = {"A": 0, "B": 0}
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                p = r.current
                d = evaluate(facts, p)
                desc = p.spec.description or "?"
                if (d.model, d.bars["reasoning"]) != expected[desc] or \
                        d.policy_version != p.version:
                    errors.append(f"{desc}: {d.model} {d.bars}")
                seen[desc] += 1
            except Exception as exc:
                errors.append(repr(exc))

    def writer() -> None:
        for i in range(12):
            text = B if i % 2 == 0 else A
            with path.open("w") as fh:  # not atomic: the watcher may read half a file
                fh.write(text[: len(text) // 2])
                fh.flush()
                time.sleep(0.01)
                fh.write(text[len(text) // 2:])
            time.sleep(0.06)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        writer()
        stop.set()
        for t in readers:
            t.join()
    finally:
        r.stop()
    assert errors == []
    assert r.successes >= 4, r.stats()
    assert seen["A"] > 0 and seen["B"] > 0
