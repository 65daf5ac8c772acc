"""The README's Quick start (issue 17, points 2 and 9): its first command is the demo, and
everything its Python one-liner imports is installed by that first command."""

from __future__ import annotations

import ast
import re
import tomllib

from tests.support import REPO


def quick_start() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def commands(section: str) -> list[str]:
    return [line for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.strip()]


def one_liner() -> str:
    (line,) = [c for c in commands(quick_start()) if c.startswith("python -c ")]
    return line


def test_the_first_command_installs_and_runs_the_demo() -> None:
    assert commands(quick_start())[0] == "pip install -e . && router demo"


def test_the_one_liners_imports_are_dependencies_of_the_package() -> None:
    code = ast.literal_eval(one_liner().removeprefix("python -c "))
    imported = {node.module.split(".")[0] for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {a.name.split(".")[0] for node in ast.walk(ast.parse(code))
                 if isinstance(node, ast.Import) for a in node.names}
    assert imported == {"openai"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower()
                for d in project["dependencies"]}
    assert imported <= declared  # `pip install -e .` installs what the one-liner imports
