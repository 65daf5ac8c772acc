"""``router serve``: run the gateway (uvicorn + uvloop + httptools)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

NAME = "serve"
HELP = "Run the gateway."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $ROUTER_CONFIG or ./config.yaml)")
    parser.add_argument("--host", help="listen address (default: server.host)")
    parser.add_argument("--port", type=int, help="listen port (default: server.port)")
    parser.add_argument("--workers", type=int, help="worker processes (default: server.workers)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from router.cli import UsageError
    from router.config import DEV_KEY_SHA256, ConfigError, default_config_path, load_config
    from router.policy import PolicyError

    path = args.config or str(default_config_path())
    try:
        cfg = load_config(path)
        from router.costs.pricing import resolve_catalogue

        catalogue = resolve_catalogue(cfg)  # every model needs a price: fail here, not in a worker
        if cfg.policy is not None:
            from router.policy import default_policy_path, load_policy

            load_policy(default_policy_path(cfg), cfg, catalogue)
    except (ConfigError, PolicyError) as exc:
        what = "policy" if isinstance(exc, PolicyError) else "config"
        print(f"router serve: invalid {what}:\n{exc}", file=sys.stderr)
        return 2
    server = cfg.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    workers = args.workers if args.workers is not None else server.workers
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if not _is_loopback(host) and any(k.key_sha256 == DEV_KEY_SHA256 for k in cfg.auth.keys):
        print(
            f"router serve: refusing to listen on {host}: {path} still accepts the development "
            "key sk-router-dev. Remove that key (auth.keys) or listen on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2

    import uvicorn

    # before prometheus-client is imported by the app (here or in the workers)
    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="router-metrics-")

    logging.basicConfig(
        level=server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    os.environ["ROUTER_CONFIG"] = os.path.abspath(path)
    uvicorn.run(
        "router.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=server.access_log,
        log_level=server.log_level,
        timeout_graceful_shutdown=int(server.shutdown_grace_seconds) or None,
        timeout_keep_alive=30,
        lifespan="on",
    )
    return 0
