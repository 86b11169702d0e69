"""``satchel serve -m MODEL``: the REST scoring server (MLflow protocol and KServe V2).

Every option falls back to an environment variable, for containers: SATCHEL_MODEL,
SATCHEL_HOST, SATCHEL_PORT, SATCHEL_WORKERS, SATCHEL_MODEL_NAME, SATCHEL_LOG_LEVEL,
SATCHEL_DEBUG, SATCHEL_ACCESS_LOG.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"satchel serve: {name}={raw!r} is not an integer") from None


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else raw.lower() in ("1", "true", "yes", "on")


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("serve", help="serve a model over REST (MLflow protocol and KServe V2)",
                       description="Serve a model directory over HTTP: /invocations, /ping, "
                       "/health, /version and the Open Inference Protocol under /v2.")
    p.add_argument("-m", "--model", default=os.environ.get("SATCHEL_MODEL"),
                   help="model directory (env SATCHEL_MODEL)")
    p.add_argument("--host", default=os.environ.get("SATCHEL_HOST", "127.0.0.1"),
                   help="address to listen on (env SATCHEL_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=_env_int("SATCHEL_PORT", 8080),
                   help="port (env SATCHEL_PORT; default 8080)")
    p.add_argument("--workers", type=int, default=_env_int("SATCHEL_WORKERS", 1),
                   help="worker processes (env SATCHEL_WORKERS; default 1)")
    p.add_argument("--name", default=os.environ.get("SATCHEL_MODEL_NAME") or None,
                   help="model name under /v2/models (env SATCHEL_MODEL_NAME; default: the "
                   "directory's name)")
    p.add_argument("--log-level", default=os.environ.get("SATCHEL_LOG_LEVEL", "info").lower(),
                   choices=LOG_LEVELS, help="uvicorn log level (env SATCHEL_LOG_LEVEL)")
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   default=_env_flag("SATCHEL_ACCESS_LOG", True),
                   help="do not log each request (env SATCHEL_ACCESS_LOG=0)")
    p.add_argument("--debug", dest="serve_debug", action="store_true",
                   default=_env_flag("SATCHEL_DEBUG", False),
                   help="stack traces in error replies (env SATCHEL_DEBUG=1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model (errors exit 1 before listening), then serve until interrupted."""
    if not args.model:
        raise SystemExit("satchel serve: give a model directory with -m (or SATCHEL_MODEL)")
    if args.workers < 1:
        raise SystemExit("satchel serve: --workers must be at least 1")
    if not 0 <= args.port <= 65535:
        raise SystemExit("satchel serve: --port must be between 0 and 65535")
    from satchel.model import load_model
    from satchel.serving.server import serve

    # Loading here, before the server binds, turns a broken model into one clear line
    # and exit code 1 instead of a server that never becomes ready.
    model = load_model(args.model)
    serve(model, host=args.host, port=args.port, workers=args.workers, name=args.name,
          debug=bool(args.debug or args.serve_debug), log_level=args.log_level,
          access_log=args.access_log)
    return 0
