"""`.ci/run` on a machine whose python is Debian's (PEP 668: no system-wide pip installs, no
venv without python3-venv): it creates a virtual environment and runs the README's test command
in it. Run with ``CI_RUN_SETUP_ONLY=1``, which stops once the environment is active (the full
suite is not run from here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / ".ci" / "run"
# The system python to build from: Debian/Ubuntu's (this machine also has pyenv's, elsewhere).
SYSTEM_PYTHON = next((p for p in ("/usr/bin/python3.13", "/usr/bin/python3.12",
                                  "/usr/bin/python3.11") if os.access(p, os.X_OK)), None)
# What .ci/run calls besides bash builtins, and the binaries whose presence it checks.
TOOLS = ("dirname", "id", "ls", "sort", "rm", "redis-server", "prometheus", "promtool",
         "node", "npm", "nginx", "wrk", "shellcheck", "initdb")


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Tests\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0].strip()


def bin_dir(tmp: Path) -> Path:
    """A PATH directory with the tools .ci/run needs and no python, python3 or pip; its
    `sudo` (used when not root) runs the command as is, so apt-get is the test's stand-in."""
    b = tmp / "bin"
    b.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (b / tool).symlink_to(found)
    (b / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
    (b / "sudo").chmod(0o755)
    return b


def run(env_path: str, venv: Path, tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(tmp), "PATH": env_path, "CI_VENV": str(venv), "CI_RUN_SETUP_ONLY": "1",
           "LANG": "C.UTF-8", **extra}
    return subprocess.run(["/bin/bash", str(RUN)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp)


def assert_targets(out: str, venv: Path) -> None:
    assert f"python: {venv}/bin/python " in out, out
    assert f", prefix {venv}\n" in out, out
    assert re.search(rf"pip: {re.escape(str(venv))}/bin/pip \(pip \S+ from "
                     rf"{re.escape(str(venv))}/lib/python3\.\d+/site-packages/pip", out), out


def test_the_last_line_is_the_readmes_test_command() -> None:
    lines = [ln for ln in RUN.read_text().splitlines() if ln.strip()]
    assert lines[-1] == readme_test_command() == "pip install -e '.[test]' && python -m pytest -q"
    # ... run after the virtual environment is activated
    text = RUN.read_text()
    assert text.index('. "$VENV/bin/activate"') < text.index(lines[-1])


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no Debian/Ubuntu python3.11+ in /usr/bin")
def test_creates_a_venv_without_python_or_pip_on_path(tmp_path: Path) -> None:
    """Only Debian's python3.X on PATH (no `python`, no `pip`): the venv is made with it, and
    the test command's `python` and `pip` are the venv's."""
    b = bin_dir(tmp_path)
    (b / "python3").symlink_to(SYSTEM_PYTHON)  # type: ignore[arg-type]
    venv = tmp_path / "venv"
    r = run(f"{b}:/nonexistent", venv, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_targets(r.stdout, venv)
    assert "apt-get" not in r.stdout + r.stderr
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version_info"
                          " >= (3, 11), sys.prefix != sys.base_prefix)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]

    # Run again: the working venv is kept (nothing recreated).
    marker = venv / "kept"
    marker.write_text("")
    r = run(f"{b}:/nonexistent", venv, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created" not in r.stdout and marker.exists()
    assert_targets(r.stdout, venv)


FAKE_APT = """#!/bin/bash
# apt-get for the test: logs its arguments; "installing" python3-venv makes venvs work.
echo "$*" >> "{log}"
if [ "$1" = install ]; then
  for p in "$@"; do
    if [ "$p" = python3-venv ]; then /bin/ln -sf "{python}" "{bin}/python3"; fi
  done
fi
"""

NO_VENV_PYTHON = """#!/bin/bash
# Debian's python3 without python3-venv: runs, but cannot create a virtual environment.
if [ "$1" = -m ] && [ "$2" = venv ]; then
  echo "The virtual environment was not created successfully because ensurepip is not" >&2
  echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv package" >&2
  exit 1
fi
exec "{python}" "$@"
"""


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no Debian/Ubuntu python3.11+ in /usr/bin")
def test_installs_python3_venv_when_venvs_cannot_be_made(tmp_path: Path) -> None:
    """Stock Debian 12: python3 is 3.11 but `python3 -m venv` fails without python3-venv.
    .ci/run installs it through apt-get (here a stand-in on PATH that logs its calls) and then
    creates the venv."""
    b = bin_dir(tmp_path)
    log = tmp_path / "apt.log"
    for name, text in (("apt-get", FAKE_APT), ("python3", NO_VENV_PYTHON)):
        (b / name).write_text(text.format(log=log, python=SYSTEM_PYTHON, bin=b))
        (b / name).chmod(0o755)
    venv = tmp_path / "venv"
    r = run(f"{b}:/nonexistent", venv, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = log.read_text().splitlines()
    installs = [c.split()[1:] for c in calls if c.startswith("install")]
    assert any("python3-venv" in c for c in installs), calls
    assert calls[0].startswith("update"), calls
    assert_targets(r.stdout, venv)


def test_fails_plainly_without_a_python_it_can_use(tmp_path: Path) -> None:
    """No python at all and apt cannot help: exit 1 with a message, never a half-made venv
    used for the tests."""
    b = bin_dir(tmp_path)
    log = tmp_path / "apt.log"
    (b / "apt-get").write_text(f'#!/bin/bash\necho "$*" >> "{log}"\n')
    (b / "apt-get").chmod(0o755)
    r = run(f"{b}:/nonexistent", tmp_path / "venv", tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "could not create a virtual environment with Python >= 3.11" in r.stderr
    installs = [c for c in log.read_text().splitlines() if c.startswith("install")]
    assert any("python3-venv" in c for c in installs)
    assert any("python3.11-venv" in c for c in installs)
    assert "prefix" not in r.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (.ci/run installs it)")
def test_shellcheck() -> None:
    r = subprocess.run(["shellcheck", str(RUN)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_venv_is_ignored_by_git() -> None:
    r = subprocess.run(["git", "check-ignore", "-q", ".venv/bin/python"], cwd=ROOT)
    assert r.returncode == 0, ".venv/ (the default CI_VENV) must be in .gitignore"
