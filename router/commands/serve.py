"""``router serve``: run the gateway (uvicorn + uvloop + httptools)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

NAME = "serve"
HELP = "Run the gateway."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from router.commands._config import add_config_argument

    add_config_argument(parser)
    parser.add_argument("--host", help="listen address (default: server.host)")
    parser.add_argument("--port", type=int, help="listen port (default: server.port)")
    parser.add_argument("--workers", type=int, help="worker processes (default: server.workers)")


def run(args: argparse.Namespace) -> int:
    from router.cli import UsageError
    from router.commands._config import load
    from router.config import DEV_KEY_SHA256
    from router.costs.pricing import resolve_catalogue
    from router.upstream.base import is_loopback_host

    # a config or policy that does not load is lines after "router serve: error:" (cli.main)
    cfg, found = load(args.config)
    path = str(found.path)
    catalogue = resolve_catalogue(cfg)  # every model needs a price: fail here, not in a worker
    if cfg.policy is not None:
        from router.policy import default_policy_path, load_policy

        load_policy(default_policy_path(cfg), cfg, catalogue)
    server = cfg.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    workers = args.workers if args.workers is not None else server.workers
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if not is_loopback_host(host) and any(k.key_sha256 == DEV_KEY_SHA256 for k in cfg.auth.keys):
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
    try:  # bound before the app starts: "ready" is only logged with the port in hand
        sock = bind_socket(host, port)
    except OSError as exc:
        print(f"router serve: cannot listen on {host}:{port}: {exc.strerror or exc} "
              "(another process has that port? choose one with --port)", file=sys.stderr)
        return 1
    logging.getLogger("router.serve").info("config: %s", found.describe())
    config = uvicorn.Config(
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
    with sock:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
            return 0
        gateway = uvicorn.Server(config)
        gateway.run(sockets=[sock])  # Ctrl-C and SIGTERM: a graceful shutdown
        return 0 if gateway.started else 3  # 3: the app failed to start (logged above)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (as uvicorn binds it, SO_REUSEADDR), shareable
    with worker processes; raises OSError (address in use, not an address of this host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # connections made as soon as "ready" is logged wait in the backlog
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock
