"""Electing the one exporter of a hot store: a Redis lock key for a fleet, ``flock`` on a file
beside the SQLite store for the processes of one machine (uvicorn workers)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from redis.asyncio import Redis, RedisCluster

from router.budgets.export.base import Leader

#: Extend the lock if this process still holds it. KEYS: lock; ARGV: token, ttl ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def holder_name() -> str:
    """What a lock records about its holder (``router ledger status`` shows it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class RedisLeader(Leader):
    """``{P}:ledger:exporter``: set with NX and a TTL by the leader, renewed on every pass; a
    dead leader's lock expires after ``ttl_s`` and another replica takes it."""

    def __init__(self, client: Redis | RedisCluster, prefix: str, ttl_s: float = 30.0) -> None:
        self._r = client
        self.key = f"{prefix}:ledger:exporter"
        self.token = holder_name()
        self.ttl_ms = int(ttl_s * 1000)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._held = False

    async def hold(self) -> bool:
        if self._held and int(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms])):
            return True
        self._held = bool(await self._r.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            await self._release(keys=[self.key], args=[self.token])


class FileLeader(Leader):
    """An exclusive ``flock`` on ``path``, kept until :meth:`release` (or the process ends)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
