"""Process plumbing for the benchmark: free ports, spawning and stopping, /proc statistics.

Everything listens on 127.0.0.1 on ports the kernel hands out; every process is started by the
benchmark, in its own process group, and stopped by its pid when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> str:
    """The 1-minute load average with the 5-minute one, e.g. ``3.41/3.02``."""
    one, five, *_ = Path("/proc/loadavg").read_text().split()
    return f"{one}/{five}"


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group this benchmark started, then SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def spawn(name: str, args: list[str], port: int, log_path: Path,
          env: dict[str, str] | None = None, cwd: str | None = None) -> Proc:
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return Proc(name, proc, port, log_path)


def wait_http(p: Proc, path: str, timeout: float = 60.0, method: str = "GET",
              body: bytes | None = None, headers: dict[str, str] | None = None) -> None:
    """Wait until ``path`` answers 2xx; raise with the log's tail if the process dies first."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not p.alive():
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode} before it was ready:\n"
                               f"{p.log_tail()}")
        req = urllib.request.Request(p.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
                last = resp.status
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{p.name} not ready on {path} after {timeout:.0f}s ({last}):\n"
                       f"{p.log_tail()}")


def wait_port(p: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not p.alive():
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.log_tail()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{p.name} not listening on {p.port}:\n{p.log_tail()}")


# --- /proc statistics -----------------------------------------------------------------------

def _ppids() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        out[int(d)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a server started through a wrapper counts whole)."""
    kids: dict[int, list[int]] = {}
    for child, parent in _ppids().items():
        kids.setdefault(parent, []).append(child)
    out, todo = [], [pid]
    while todo and len(out) < 256:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants, in seconds."""
    total = 0
    for p in tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and its descendants, in MB (10^6 bytes)."""
    total_kb = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb * 1024 / 1e6


def start_redis(tmp: Path, name: str = "redis") -> Proc:
    """A throw-away redis-server (no persistence) on a free port, its files in ``tmp``."""
    port = free_port()
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    p = spawn(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(d)], port, tmp / f"{name}.log")
    wait_port(p)
    return p
