"""Strict YAML documents: values plus the line each key came from.

Config and policy files are parsed in two phases (as TensorZero does): this module turns a YAML
file into plain Python values while remembering where every mapping key and sequence item stood,
then a pydantic model with ``extra="forbid"`` validates it. Validation errors are turned back into
``file:line: key.path: message`` so that a typo in a 300-line policy points at its exact line.

Duplicate keys are errors (PyYAML silently keeps the last one). String scalars may reference the
environment as ``${VAR}`` or ``${VAR:-default}``; a reference to an unset variable with no default
is an error naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class DocumentError(Exception):
    """A YAML document is malformed or does not match its schema.

    ``problems`` holds one ``file:line: key: message`` string per problem; ``str(exc)`` joins them.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Document:
    """A parsed YAML file: its data and the line (1-based) of every key path."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc`` or of its nearest ancestor that has one."""
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]

    def where(self, loc: Loc) -> str:
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line is not None else self.path

    def error(self, loc: Loc, message: str) -> str:
        """One problem line: ``file:line: key.path: message``."""
        key = format_loc(loc)
        return f"{self.where(loc)}: {key}: {message}" if key else f"{self.where(loc)}: {message}"


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _interpolate(value: str, env: Mapping[str, str], where: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise DocumentError([f"{where}: environment variable {name} is not set (no default)"])

    return _ENV_REF.sub(repl, value) if "${" in value else value


class _Builder:
    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.lines: dict[Loc, int] = {}
        self.problems: list[str] = []
        self._constructor = yaml.SafeLoader(b"")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool):
                    self.problems.append(
                        f"{self.path}:{key_node.start_mark.line + 1}: mapping keys must be scalars"
                    )
                    continue
                if key in out:
                    self.problems.append(
                        f"{self.path}:{key_node.start_mark.line + 1}: "
                        f"{format_loc((*loc, str(key)))}: duplicate key"
                    )
                    continue
                child: Loc = (*loc, str(key))
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                items.append(self.build(item, (*loc, i)))
            return items
        value = self._constructor.construct_object(node, deep=True)
        if isinstance(value, str):
            where = f"{self.path}:{node.start_mark.line + 1}"
            try:
                value = _interpolate(value, self.env, where)
            except DocumentError as exc:
                self.problems.extend(exc.problems)
        return value


def parse_text(text: str, path: str, env: Mapping[str, str] | None = None) -> Document:
    """Parse YAML ``text`` (named ``path`` in messages) into a :class:`Document`."""
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError([f"{path}{line}: invalid YAML: {problem}"]) from None
    if node is None:
        return Document(path=path, data={}, lines={(): 1})
    builder = _Builder(path, env)
    data = builder.build(node, ())
    if builder.problems:
        raise DocumentError(builder.problems)
    return Document(path=path, data=data, lines=builder.lines)


def load_file(path: str | Path, env: Mapping[str, str] | None = None) -> Document:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DocumentError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise DocumentError([f"{p}: not UTF-8 text"]) from None
    return parse_text(text, str(p), env)


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in err and kind not in ("model_type", "dict_type", "list_type"):
        shown = repr(err["input"])
        if len(shown) <= 60:
            msg += f" (got {shown})"
    return msg


def validation_problems(doc: Document, exc: ValidationError, prefix: Loc = ()) -> list[str]:
    """Turn a pydantic error into ``file:line: key: message`` lines."""
    problems = []
    for err in exc.errors():
        # pydantic puts the union/tag branch names into loc; keep the parts present in the data.
        loc: Loc = (*prefix, *(p for p in err["loc"] if not _is_branch_name(p)))
        problems.append(doc.error(loc, _pydantic_message(err)))
    return problems


def _is_branch_name(part: str | int) -> bool:
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def validate(doc: Document, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate ``doc.data`` against ``model``; errors name file, line and key."""
    if not isinstance(doc.data, dict):
        raise DocumentError([doc.error((), "the top level must be a mapping")])
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise DocumentError(validation_problems(doc, exc)) from None
