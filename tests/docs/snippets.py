"""Checking the YAML in the docs with the gateway's own strict parsers.

Every fenced ```yaml block of a checked page is a policy or a config.yaml fragment, told apart
by its top-level keys, and must pass the same checks the gateway runs on start-up and reload
(unknown keys, types, ranges, the policy's checks against the catalogue). A fragment is checked
in place of the same sections of the shipped file (policies/default.yaml, config.yaml), the
way a policy directory's files are merged. A block that is deliberately something else says so
on the line before it: ``<!-- not-checked: why -->``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from router.config import Config, ConfigError, build_config, load_config
from router.costs.pricing import PricedModel, resolve_catalogue
from router.policy.compile import build_policy, default_policy_path
from router.policy.errors import PolicyError
from router.policy.schema import PolicyFile
from router.policy.sources import MergedDocument, parse_sources, read_sources
from router.yamlfile import Document, DocumentError, load_file, parse_text

REPO = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"^<!-- not-checked: \S.* -->$")


def _top_keys(model: type[Any]) -> frozenset[str]:
    return frozenset(f.alias or name for name, f in model.model_fields.items())


POLICY_KEYS = _top_keys(PolicyFile)
CONFIG_KEYS = _top_keys(Config) - {"source"}


@dataclass(frozen=True)
class Block:
    path: str  # as shown in messages
    line: int  # of the opening fence
    lang: str
    text: str
    marker: str | None  # the HTML comment on the line before, if any

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def numbered(self) -> str:
        """The text with blank lines before it, so that parse errors give the page's lines."""
        return "\n" * self.line + self.text


def blocks(text: str, path: str) -> Iterator[Block]:
    """Fenced code blocks of a Markdown page."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        before = lines[k].strip() if k >= 0 else ""
        marker = before if before.startswith("<!--") else None
        yield Block(path, start + 1, m.group(1), "\n".join(lines[start + 1:j]) + "\n", marker)
        i = j + 1


class AnyEnv(Mapping[str, str]):
    """Every ``${VAR}`` of a snippet is set (to a placeholder): snippets show references."""

    def __getitem__(self, key: str) -> str:
        return "placeholder"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def shipped_config() -> tuple[Config, Document]:
    path = REPO / "config.yaml"
    return load_config(path, env={}), load_file(path, env={})


@cache
def shipped_catalogue() -> dict[str, PricedModel]:
    return resolve_catalogue(shipped_config()[0])


def shipped_policy_path() -> Path:
    return default_policy_path(shipped_config()[0])


@cache
def shipped_policy_doc() -> Document:
    return parse_sources(read_sources(shipped_policy_path()), env={})


#: Sections of named entries: a snippet showing some adds or replaces those entries only.
BY_NAME = ("models", "gpus")


def merged(base: Document, part: Document, by_name: tuple[str, ...] = ()) -> MergedDocument:
    """``part``'s top-level sections in place of ``base``'s (as a policy directory merges);
    for the sections in ``by_name``, its entries in place of the base's entries. Problems in
    a section the part has are named after the part (its lines, its path)."""
    keys = {str(k) for k in part.data}
    origins = base.origins if isinstance(base, MergedDocument) else {}
    data = {k: v for k, v in base.data.items() if str(k) not in keys} | part.data
    replaced = set(keys)
    for section in by_name:
        if isinstance(part.data.get(section), dict) and isinstance(base.data.get(section), dict):
            data[section] = base.data[section] | part.data[section]
            replaced.discard(section)  # the base's other entries keep their lines
    lines = {loc: n for loc, n in base.lines.items() if loc and str(loc[0]) not in replaced}
    lines |= {loc: n for loc, n in part.lines.items() if loc}
    where = {str(k): origins.get(str(k), base.path) for k in base.data} | dict.fromkeys(
        keys, part.path)
    return MergedDocument(path=part.path, data=data, lines=lines, origins=where)


def kinds_of(data: Any) -> tuple[str, ...]:
    """What the top-level keys allow: ``policy``, ``config``, both (``models:`` alone), none."""
    if not isinstance(data, dict) or not data:
        return ()
    keys = {str(k) for k in data}
    return tuple(k for k, known in (("config", CONFIG_KEYS), ("policy", POLICY_KEYS))
                 if keys <= known)


def _check_as(kind: str, doc: Document) -> list[str]:
    config, config_doc = shipped_config()
    if kind == "config":
        try:
            build_config(merged(config_doc, doc, BY_NAME))
        except ConfigError as exc:
            return exc.problems
        return []
    whole = "tasks" in doc.data and "models" in doc.data
    try:
        build_policy(doc if whole else merged(shipped_policy_doc(), doc), config,
                     shipped_catalogue())
    except PolicyError as exc:
        return exc.problems
    return []


def check_yaml(block: Block) -> list[str]:
    """Problems of one ```yaml block (empty: it passes), ``file:line: key: message``. A block
    whose keys fit both files (``models:``) passes if it is valid as either."""
    try:
        doc = parse_text(block.numbered(), block.path, AnyEnv())
    except DocumentError as exc:
        return exc.problems
    kinds = kinds_of(doc.data)
    if not kinds:
        keys = sorted(map(str, doc.data)) if isinstance(doc.data, dict) else []
        unknown = [k for k in keys if k not in POLICY_KEYS | CONFIG_KEYS]
        if unknown:
            return [doc.error((k,), "unknown key (neither a policy nor a config.yaml section)")
                    for k in unknown]
        return [f"{block.where}: not a policy or config.yaml fragment (top-level keys {keys}); "
                "mark it <!-- not-checked: why --> if it is meant as something else"]
    problems: list[str] = []
    for kind in kinds:
        found = _check_as(kind, doc)
        if not found:
            return []
        problems += [f"{p} (as a {kind} fragment)" for p in found]
    return problems


def checked_blocks(page: Path) -> list[Block]:
    rel = str(page.relative_to(REPO))
    return [b for b in blocks(page.read_text(), rel)
            if b.lang in ("yaml", "yml") and not (b.marker and SKIP.match(b.marker))]


def uncommented_example(text: str, first: str) -> tuple[str, int]:
    """The commented-out YAML example starting at the line ``# <first>`` of ``text``, with
    its ``# `` removed, and its first line number: the lines that continue it (``#`` and an
    indent, or ``# key:`` at the top level); prose comment lines between them are left out."""
    lines = text.split("\n")
    start = lines.index(f"# {first}")
    out = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        body = line[2:]
        if body.startswith(" ") or re.match(r"^[a-z_]+:\s*(#.*)?$", body):
            out.append(body)
    return "\n".join(out) + "\n", start + 1


HEADING = re.compile(r"^(#{1,6}) (.+)$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(text: str) -> set[str]:
    out: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out
