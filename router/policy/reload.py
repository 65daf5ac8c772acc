"""Hot reload: watch the policy files, swap the whole policy at once, never take a bad one.

:class:`PolicyReloader` holds the running :class:`Policy`. A daemon thread reads the policy's
files every ``interval`` seconds (0.5 by default; a few small files, so reading them is cheaper
and more reliable than trusting modification times, whose granularity varies by file system)
and compares a digest of their names and contents. When it changed, the new text is parsed and
checked off the event loop, and only a policy that passed every check replaces the running one,
by a single reference assignment: a reader (``reloader.current``) sees the old policy or the
new one, never a mixture, and takes no lock. A refused edit leaves the running policy in place,
is logged with its ``file:line: key: message`` lines, and counted.

Edits are live within ``interval`` + load time (well under 2 s). :meth:`trigger` asks for a
reload from a signal handler (SIGHUP) without blocking; :meth:`reload` does one synchronously.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from router.policy.compile import Catalogue, Policy, policy_from_sources
from router.policy.errors import PolicyError
from router.policy.sources import read_sources

if TYPE_CHECKING:
    from router.config import Config

log = logging.getLogger("router.policy")


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """One reload attempt (only attempts on changed content, or forced ones, are events)."""

    ok: bool
    #: The running policy's version after the attempt.
    version: str
    #: The version that was loaded (ok) or the digest that was refused.
    loaded: str | None
    error: str | None
    at: float
    #: ``poll``, ``signal`` or ``manual``.
    trigger: str


Listener = Callable[[ReloadEvent], None]


class PolicyReloader:
    """Owns the running policy. Construct (loads, raises :class:`PolicyError` if invalid), then
    ``start()``; read ``current`` per request; ``stop()`` at shutdown.

    Counters for metrics: ``successes``, ``failures``; ``last_error``, ``last_success_at``.
    ``listeners`` are called (on the reloader's thread) with every :class:`ReloadEvent`.
    """

    def __init__(
        self,
        path: str | Path,
        config: Config,
        catalogue: Catalogue | None = None,
        *,
        interval: float = 0.5,
        env: Mapping[str, str] | None = None,
        listeners: list[Listener] | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.interval = interval
        self.env = env
        self.listeners: list[Listener] = list(listeners or [])
        if catalogue is None:
            from router.costs.pricing import resolve_catalogue

            catalogue = resolve_catalogue(config)
        self.catalogue = catalogue
        src = read_sources(self.path)
        self._policy = policy_from_sources(src, config, catalogue, env)
        self._seen = src.digest + self._policy.referenced_digest()
        self.successes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_success_at: float = time.time()
        self.last_event: ReloadEvent | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._force: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Policy:
        """The running policy (one attribute read: safe from any thread, no lock)."""
        return self._policy

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="policy-reloader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def trigger(self, why: str = "signal") -> None:
        """Ask the watcher thread to reload now, even if nothing changed (SIGHUP).

        Non-blocking and safe to call from a signal handler or the event loop."""
        self._force = why
        self._wake.set()

    # -------------------------------------------------------------------------------- loading

    def reload(self, trigger: str = "manual") -> ReloadEvent:
        """Load the files now, whatever their digest; swap if valid. Returns the event."""
        return self._attempt(trigger, force=True) or self._noop(trigger)

    def check(self) -> ReloadEvent | None:
        """One poll: reload if the files' content changed since the last attempt."""
        return self._attempt("poll", force=False)

    def _noop(self, trigger: str) -> ReloadEvent:
        p = self._policy
        return ReloadEvent(True, p.version, p.version, None, time.time(), trigger)

    def _attempt(self, trigger: str, *, force: bool) -> ReloadEvent | None:
        with self._lock:
            try:
                src = read_sources(self.path)
            except PolicyError as exc:
                digest = "unreadable:" + str(exc)
                if digest == self._seen and not force:
                    return None
                self._seen = digest
                return self._refused(trigger, str(exc), None)
            # the policy's files and the files it refers to (a difficulty model)
            digest = src.digest + self._policy.referenced_digest()
            if digest == self._seen and not force:
                return None
            self._seen = digest
            try:
                policy = policy_from_sources(src, self.config, self.catalogue, self.env)
                self._seen = src.digest + policy.referenced_digest()
            except PolicyError as exc:
                return self._refused(trigger, str(exc), src.digest[:12])
            except Exception as exc:  # a bug must not kill the watcher or the running policy
                log.exception("policy reload crashed; keeping version %s", self._policy.version)
                return self._refused(trigger, f"{type(exc).__name__}: {exc}", src.digest[:12])
            old = self._policy.version
            self._policy = policy  # the atomic swap
            event = ReloadEvent(True, policy.version, policy.version, None, time.time(), trigger)
            # Details first, counters last: whoever waits on a counter sees the details.
            self.last_error = None
            self.last_success_at = event.at
            self.last_event = event
            self.successes += 1
            log.info("policy %s reloaded (%s): version %s -> %s",
                     self.path, trigger, old, policy.version)
            for w in policy.warnings:
                log.warning("policy: %s", w)
            return self._emit(event)

    def _refused(self, trigger: str, error: str, loaded: str | None) -> ReloadEvent:
        event = ReloadEvent(False, self._policy.version, loaded, error, time.time(), trigger)
        self.last_error = error
        self.last_event = event
        self.failures += 1
        log.error("policy %s: edit refused (%s), keeping version %s:\n%s",
                  self.path, trigger, self._policy.version, error)
        return self._emit(event)

    def _emit(self, event: ReloadEvent) -> ReloadEvent:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("policy reload listener failed")
        return event

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            forced, self._force = self._force, None
            try:
                if forced is not None:
                    self.reload(forced)
                else:
                    self.check()
            except Exception:  # keep watching whatever happens
                log.exception("policy watcher error")

    def stats(self) -> dict[str, object]:
        """For a status endpoint or metrics: version, counters, last error."""
        p = self._policy
        return {
            "path": str(self.path),
            "version": p.version,
            "loaded_at": p.loaded_at,
            "reloads_ok": self.successes,
            "reloads_failed": self.failures,
            "last_error": self.last_error,
            "last_success_at": self.last_success_at,
        }
