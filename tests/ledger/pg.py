"""A PostgreSQL server of the tests' own: ``initdb`` into a temporary directory and
``postgres`` on a free loopback port, stopped at the end of the session.

PostgreSQL refuses to run as root: as root, ``initdb`` and the server run as the ``postgres``
user (which Debian's ``postgresql`` package creates; else ``nobody``: the child process drops to
it before it executes them, so signals reach the server itself), in a directory that user owns. The binaries are found on $PATH or in /usr/lib/postgresql/<version>/bin (where
Debian puts them); without them the tests that need a server skip, saying so.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import free_port

NO_POSTGRES = ("PostgreSQL server binaries (initdb, postgres) not found: install them "
               "(apt-get install postgresql) to run the ledger export tests")


def bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        d = Path(found).resolve().parent  # Debian's /usr/local/bin links point into the real one
        if (d / "postgres").exists():
            return d
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "postgres")):
            return Path(d)
    return None


def _run_as() -> str | None:
    """The user to run PostgreSQL as (None: this one, which is not root)."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    raise RuntimeError("running as root without a postgres or nobody user to run PostgreSQL as")


class PostgresServer:
    def __init__(self) -> None:
        found = bindir()
        if found is None:
            raise FileNotFoundError(NO_POSTGRES)
        self.bin = found
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="router-pg-"))
        self.run_as = _run_as()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = "postgres"  # the database superuser initdb creates

    def _as(self) -> dict[str, Any]:
        """Popen arguments that run the child as ``run_as`` (uid, gid, no other groups)."""
        if self.run_as is None:
            return {}
        pw = pwd.getpwnam(self.run_as)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": str(self.dir), "USER": self.run_as}}

    def _own(self) -> None:
        if self.run_as is not None:
            pw = pwd.getpwnam(self.run_as)
            os.chmod(self.dir, 0o700)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def start(self) -> None:
        self._own()
        data = self.dir / "data"
        subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-U", self.user,
                        "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.dir, **self._as())
        log = open(self.dir / "log", "wb")  # noqa: SIM115 - the server's, closed at stop
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.dir), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=100"], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
            **self._as())
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited:\n" + (self.dir / "log").read_text())
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not start:\n" + (self.dir / "log").read_text())
            time.sleep(0.1)

    def _ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: ends open sessions too
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
