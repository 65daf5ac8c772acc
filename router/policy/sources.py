"""Where a policy comes from: one file, or every ``*.yaml`` directly inside a directory.

A directory lets a platform team keep, say, ``capabilities.yaml`` apart from ``access.yaml``:
the files' top-level sections are merged, and a section defined in two files is an error.
Sub-directories (such as ``policies/examples/``) are not read.

:func:`read_sources` returns the files' text and one digest over names and contents: the
reloader compares digests to know whether anything changed, whatever the file system's
timestamp granularity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.policy.errors import PolicyError
from router.yamlfile import Document, DocumentError, Loc, parse_text

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Sources:
    """The text of every file of a policy, read at one moment."""

    path: str
    files: tuple[tuple[str, str], ...]
    digest: str


@dataclass
class MergedDocument(Document):
    """Several YAML files merged at the top level; errors name the file each section came from."""

    origins: dict[str, str] = field(default_factory=dict)

    def where(self, loc: Loc) -> str:
        path = self.origins.get(str(loc[0]), self.path) if loc else self.path
        line = self.line_of(loc) if loc else None
        return f"{path}:{line}" if line is not None else path


def policy_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in SUFFIXES and f.is_file())
        if not files:
            raise PolicyError([f"{p}: no policy files (*.yaml) in this directory"])
        return files
    return [p]


def read_sources(path: str | Path) -> Sources:
    """Read every file of the policy at ``path``; :class:`PolicyError` if one is unreadable."""
    files: list[tuple[str, str]] = []
    h = hashlib.sha256()
    for f in policy_files(path):
        try:
            raw = f.read_bytes()
        except OSError as exc:
            raise PolicyError([f"{f}: cannot read: {exc.strerror or exc}"]) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError([f"{f}: not UTF-8 text"]) from None
        files.append((str(f), text))
        h.update(f.name.encode() + b"\0" + raw + b"\0")
    return Sources(str(path), tuple(files), h.hexdigest())


def parse_sources(src: Sources, env: Mapping[str, str] | None = None) -> Document:
    """Parse the files into one document (strict YAML: duplicate keys are errors)."""
    docs: list[Document] = []
    problems: list[str] = []
    for name, text in src.files:
        try:
            docs.append(parse_text(text, name, env))
        except DocumentError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    if len(docs) == 1:
        return docs[0]
    data: dict[str, Any] = {}
    lines: dict[Loc, int] = {}
    origins: dict[str, str] = {}
    for doc in docs:
        if not isinstance(doc.data, dict):
            problems.append(doc.error((), "the top level must be a mapping"))
            continue
        for key, value in doc.data.items():
            k = str(key)
            if k in data:
                problems.append(
                    f"{doc.where((k,))}: {k}: also defined in {origins[k]}:{lines[(k,)]}"
                )
                continue
            data[k] = value
            origins[k] = doc.path
            lines.update({loc: n for loc, n in doc.lines.items() if loc and loc[0] == k})
    if problems:
        raise PolicyError(problems)
    lines[()] = 1
    return MergedDocument(path=src.path, data=data, lines=lines, origins=origins)
