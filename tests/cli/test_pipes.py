"""A reader that closes the output early (``router route "x" | head -3``) ends the command
quietly: no BrokenPipeError traceback, exit code 141 (128 + SIGPIPE), as for other tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from router.cli import EXIT_BROKEN_PIPE
from tests.cli.support import user_env


@pytest.mark.parametrize("argv", [["route", "x", "--all-keys"], ["models"], ["policy", "schema"],
                                  ["--help"]])
def test_output_closed_early(tmp_path: Path, argv: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "router", *argv], cwd=tmp_path,
                            env=user_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has written anything: its first write fails
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert err == ""
    assert code == (0 if argv == ["--help"] else EXIT_BROKEN_PIPE)


def test_output_read_in_part_like_head(tmp_path: Path) -> None:
    done = subprocess.run(f"{sys.executable} -m router route x --all-keys | head -3", shell=True,
                          cwd=tmp_path, env=user_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
