"""``router init``: write an editable copy of the default config and policy.

::

    router init                 # ~/.config/federated-router/ (every command then reads it)
    router init .               # ./config.yaml and ./policies/default.yaml
    router init /etc/router --force

The copies are the files the package ships (``router/defaults/``): ``config.yaml`` and the
``policies/default.yaml`` it names (relative to the config's directory). Existing files are
left alone unless ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from router.cli import UsageError

NAME = "init"
HELP = "Write an editable config.yaml and policies/default.yaml (default: the user config dir)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, metavar="DIR",
                        help="where to write them (default: $XDG_CONFIG_HOME/federated-router, "
                             "else ~/.config/federated-router)")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _where_used(target: Path, user_dir: Path) -> str:
    config = target / "config.yaml"
    if _same(target, user_dir):
        return ("every command reads it unless --config, $ROUTER_CONFIG or a ./config.yaml "
                "says otherwise")
    if _same(target, Path.cwd()):
        return "commands run in this directory read it (./config.yaml)"
    return f"use it with --config {config} or ROUTER_CONFIG={config}"


def run(args: argparse.Namespace) -> int:
    from router.config import ConfigError, load_config
    from router.configpath import packaged_config_path, packaged_policy_path, user_config_dir

    user_dir = user_config_dir()
    target: Path = args.dir if args.dir is not None else user_dir
    copies = [(packaged_config_path(), target / "config.yaml"),
              (packaged_policy_path(), target / "policies" / "default.yaml")]
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory")
    existing = [dst for _, dst in copies if dst.exists()]
    if existing and not args.force:
        raise UsageError(f"{', '.join(map(str, existing))} already "
                         f"{'exists' if len(existing) == 1 else 'exist'}: --force overwrites")
    texts = []
    for src, _ in copies:
        try:
            texts.append(src.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"the packaged default {src} cannot be read "
                             f"({exc.strerror or exc}): reinstall federated-router") from None
    try:
        for (_, dst), text in zip(copies, texts, strict=True):
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or target}: {exc.strerror or exc}") from None
    for _, dst in copies:
        print(f"wrote {dst}")
    print(f"{target / 'config.yaml'}: {_where_used(target, user_dir)}")
    try:
        store = load_config(target / "config.yaml").store.url
        print(f"its budget store and spend ledger: {store}")
    except ConfigError:  # e.g. a ${VAR} it needs is unset here: say nothing more
        pass
    print("check it with: router policy check" + (
        "" if _same(target, user_dir) or _same(target, Path.cwd())
        else f" --config {target / 'config.yaml'}"))
    return 0
