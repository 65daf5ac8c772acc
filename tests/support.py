"""Real processes for tests: the fake upstream and the gateway, each on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str) -> str | None:
    """The path of the executable ``name`` (on $PATH, else in /usr/bin), or None."""
    return shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)


def wait_until(cond: Callable[[], object], timeout: float, msg: str | None = None,
               interval: float = 0.01) -> float:
    """Seconds until ``cond()`` held; fails with ``msg`` (default: "not within <timeout>s")
    after ``timeout`` seconds."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(msg or f"not within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - t0


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _spawn(args: list[str], port: int, log_path: Path, env: dict[str, str] | None,
           ready_path: str, *, inherit_env: bool = True) -> Proc:
    """Start ``args`` and wait for ``ready_path`` to answer 200. ``env`` is added to this
    process's environment (``inherit_env=False``: is the whole environment)."""
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=full_env,
                            cwd=str(REPO))
    handle = Proc(proc, port, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited {proc.returncode}:\n{handle.log()}")
            try:
                with urllib.request.urlopen(f"{handle.url}{ready_path}", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{args} not ready:\n{handle.log()}") from None
                time.sleep(0.05)
    except BaseException:
        handle.stop(signal.SIGKILL)
        raise
    return handle


def start_fake_upstream(tmp: Path, port: int | None = None) -> Proc:
    port = port or free_port()
    return _spawn([sys.executable, str(REPO / "tests" / "fake_upstream.py"), "--port", str(port)],
                  port, tmp / f"fake-{port}.log", None, "/v1/models")


def start_gateway(config_path: Path, tmp: Path, env: dict[str, str] | None = None,
                  extra_args: list[str] | None = None) -> Proc:
    port = free_port()
    args = [sys.executable, "-m", "router", "serve", "--config", str(config_path),
            "--port", str(port), *(extra_args or [])]
    return _spawn(args, port, tmp / f"gateway-{port}.log", env, "/readyz")

