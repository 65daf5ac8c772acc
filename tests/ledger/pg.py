"""A PostgreSQL server of the tests' own: ``initdb`` into a temporary directory and
``postgres`` on a free loopback port, stopped at the end of the session.

PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user (which
Debian's ``postgresql`` package creates; else ``nobody``), through ``runuser``, in a directory
that user owns. The binaries are found on $PATH or in /usr/lib/postgresql/<version>/bin (where
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


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root without a postgres or nobody user to run PostgreSQL as")


class PostgresServer:
    def __init__(self) -> None:
        found = bindir()
        if found is None:
            raise FileNotFoundError(NO_POSTGRES)
        self.bin = found
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="router-pg-"))
        self.prefix = _run_as()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = "postgres"

    def _own(self) -> None:
        if self.prefix:
            user = self.prefix[2]
            pw = pwd.getpwnam(user)
            os.chmod(self.dir, 0o700)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def start(self) -> None:
        self._own()
        data = self.dir / "data"
        subprocess.run([*self.prefix, str(self.bin / "initdb"), "-D", str(data), "-U", self.user,
                        "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = open(self.dir / "log", "wb")  # noqa: SIM115 - the server's, closed at stop
        self.proc = subprocess.Popen(
            [*self.prefix, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.dir), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=100"], stdout=log, stderr=subprocess.STDOUT)
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
