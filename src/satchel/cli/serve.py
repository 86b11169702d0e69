"""``satchel serve -m MODEL``: the REST scoring server (MLflow protocol and KServe V2).

Every option falls back to a ``SATCHEL_*`` environment variable, for containers (the
table is in docs/protocol.md); a flag on the command line wins over its variable.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _env(name: str, default: Any, convert: Any = str) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return convert(raw.strip())
    except ValueError as exc:
        raise SystemExit(f"satchel serve: {name}={raw!r} is not valid: {exc}") from None


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else raw.lower() in ("1", "true", "yes", "on")


def _size(text: str) -> int:
    from satchel.serving.options import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_size(text: str) -> int:
    from satchel.serving.options import parse_size

    return parse_size(text)


# option -> (environment variable, default, conversion), read in run(): a bad variable
# must not break every other satchel command at parser construction
ENV = {
    "port": ("SATCHEL_PORT", 8080, int),
    "workers": ("SATCHEL_WORKERS", 1, int),
    "max_batch_size": ("SATCHEL_MAX_BATCH_SIZE", 64, int),
    "max_batch_delay_ms": ("SATCHEL_MAX_BATCH_DELAY_MS", 5.0, float),
    "batching": ("SATCHEL_BATCHING", "auto", str),
    "max_body_size": ("SATCHEL_MAX_BODY_SIZE", 100 * 2**20, _parse_size),
    "timeout": ("SATCHEL_TIMEOUT", 60.0, float),
    "max_queue": ("SATCHEL_MAX_QUEUE", 1024, int),
    "drain_timeout": ("SATCHEL_DRAIN_TIMEOUT", 30.0, float),
    "log_level": ("SATCHEL_LOG_LEVEL", "info", str.lower),
    "log_format": ("SATCHEL_LOG_FORMAT", "text", str.lower),
}


def _from_env(args: argparse.Namespace) -> None:
    """Fill every option not given on the command line from its variable or default."""
    for dest, (var, default, convert) in ENV.items():
        if getattr(args, dest) is None:
            setattr(args, dest, _env(var, default, convert))


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "serve", help="serve models over REST (MLflow protocol and KServe V2)",
        description="Serve model directories over HTTP: /invocations, /ping, /health, "
        "/version, the Open Inference Protocol under /v2, /metrics, /openapi.json and /docs.")
    p.add_argument("-m", "--model", action="append", metavar="[NAME=]PATH",
                   help="a model directory, optionally named (repeat for several models; "
                   "env SATCHEL_MODEL, comma-separated)")
    p.add_argument("--default", default=os.environ.get("SATCHEL_DEFAULT_MODEL") or None,
                   metavar="NAME", help="the model /invocations scores (env "
                   "SATCHEL_DEFAULT_MODEL; default: the first)")
    p.add_argument("--host", default=os.environ.get("SATCHEL_HOST", "127.0.0.1"),
                   help="address to listen on (env SATCHEL_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int,
                   help="port (env SATCHEL_PORT; default 8080)")
    p.add_argument("--workers", type=int,
                   help="worker processes sharing the loaded models (env SATCHEL_WORKERS; "
                   "default 1)")
    p.add_argument("--name", default=os.environ.get("SATCHEL_MODEL_NAME") or None,
                   help="name of a single unnamed model under /v2/models (env "
                   "SATCHEL_MODEL_NAME; default: the directory's name)")
    g = p.add_argument_group("batching")
    g.add_argument("--max-batch-size", type=int, metavar="ROWS",
                   help="most rows merged into one predict call (env SATCHEL_MAX_BATCH_SIZE; "
                   "default 64)")
    g.add_argument("--max-batch-delay-ms", type=float, metavar="MS",
                   help="longest a request waits for others to join its batch (env "
                   "SATCHEL_MAX_BATCH_DELAY_MS; default 5)")
    g.add_argument("--batching", choices=("auto", "on", "off"),
                   help="auto: batch models that declare rows independent; on: every model; "
                   "off: none (env SATCHEL_BATCHING; default auto)")
    g.add_argument("--no-batching", dest="batching", action="store_const", const="off",
                   help="the same as --batching off")
    g = p.add_argument_group("limits and access")
    g.add_argument("--max-body-size", type=_size, metavar="SIZE",
                   help="largest request body, e.g. 100MiB (env SATCHEL_MAX_BODY_SIZE; "
                   "default 100MiB)")
    g.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="seconds until a request answers 504; 0: no limit (env "
                   "SATCHEL_TIMEOUT; default 60)")
    g.add_argument("--max-queue", type=int, metavar="N",
                   help="scoring requests a worker holds at once before answering 503; 0: no "
                   "limit (env SATCHEL_MAX_QUEUE; default 1024)")
    g.add_argument("--auth-token-file", metavar="PATH",
                   default=os.environ.get("SATCHEL_AUTH_TOKEN_FILE") or None,
                   help="require 'Authorization: Bearer <token>' with the token in this file, "
                   "on every path but liveness (env SATCHEL_AUTH_TOKEN_FILE, or the token "
                   "itself in SATCHEL_AUTH_TOKEN)")
    g.add_argument("--drain-timeout", type=float, metavar="SECONDS",
                   help="on SIGTERM, seconds to finish requests in flight (env "
                   "SATCHEL_DRAIN_TIMEOUT; default 30)")
    g = p.add_argument_group("logs")
    g.add_argument("--log-level", choices=LOG_LEVELS,
                   help="log level (env SATCHEL_LOG_LEVEL; default info)")
    g.add_argument("--log-format", choices=("text", "json"),
                   help="text, or one JSON object per line (env SATCHEL_LOG_FORMAT)")
    g.add_argument("--no-access-log", dest="access_log", action="store_false",
                   default=_env_flag("SATCHEL_ACCESS_LOG", True),
                   help="do not log each request (env SATCHEL_ACCESS_LOG=0)")
    g.add_argument("--debug", dest="serve_debug", action="store_true",
                   default=_env_flag("SATCHEL_DEBUG", False),
                   help="stack traces in error replies (env SATCHEL_DEBUG=1)")
    p.set_defaults(func=run)


def model_specs(raw: list[str] | None, name: str | None) -> list[tuple[str, str]]:
    """``[NAME=]PATH`` values as (name, path) pairs; a bare path is named ``name`` or after
    its directory."""
    from satchel.serving.dataplane import default_name

    if not raw:
        env = os.environ.get("SATCHEL_MODEL", "")
        raw = [s for s in (part.strip() for part in env.split(",")) if s]
    if not raw:
        raise SystemExit("satchel serve: give a model directory with -m (or SATCHEL_MODEL)")
    out = []
    for spec in raw:
        left, sep, right = spec.partition("=")
        if sep and _NAME.fullmatch(left) and not Path(spec).exists():
            out.append((left, right))
        else:
            out.append((name if name and len(raw) == 1 else default_name(spec), spec))
    return out


def _token(args: argparse.Namespace) -> str | None:
    if args.auth_token_file:
        try:
            token = Path(args.auth_token_file).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"satchel serve: cannot read --auth-token-file: {exc}") from None
        if not token:
            raise SystemExit("satchel serve: the --auth-token-file is empty")
        return token
    return os.environ.get("SATCHEL_AUTH_TOKEN", "").strip() or None


def run(args: argparse.Namespace) -> int:
    """Load every model (errors exit 1 before listening), then serve until stopped."""
    _from_env(args)
    for flag, value, allowed in (("--batching/SATCHEL_BATCHING", args.batching,
                                  ("auto", "on", "off")),
                                 ("--log-format/SATCHEL_LOG_FORMAT", args.log_format,
                                  ("text", "json")),
                                 ("--log-level/SATCHEL_LOG_LEVEL", args.log_level, LOG_LEVELS)):
        if value not in allowed:
            raise SystemExit(f"satchel serve: {flag} must be one of {list(allowed)}, "
                             f"not {value!r}")
    if args.workers < 1:
        raise SystemExit("satchel serve: --workers must be at least 1")
    if not 0 <= args.port <= 65535:
        raise SystemExit("satchel serve: --port must be between 0 and 65535")
    if args.max_batch_size < 1 or args.max_batch_delay_ms < 0:
        raise SystemExit("satchel serve: --max-batch-size must be at least 1 and "
                         "--max-batch-delay-ms at least 0")
    if args.timeout < 0 or args.max_queue < 0 or args.max_body_size < 1:
        raise SystemExit("satchel serve: --timeout and --max-queue must not be negative, "
                         "--max-body-size must be positive")
    specs = model_specs(args.model, args.name)
    names = [n for n, _ in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SystemExit(f"satchel serve: two models are named '{dup[0]}'; name each with "
                         "-m NAME=PATH")
    if args.default is not None:
        if args.default not in names:
            raise SystemExit(f"satchel serve: --default '{args.default}' is not one of the "
                             f"served models {names}")
        specs.sort(key=lambda s: s[0] != args.default)  # the registry's first is the default
    token = _token(args)

    from dataclasses import replace

    from satchel.serving.batching import BatchOptions
    from satchel.serving.dataplane import ModelRegistry
    from satchel.serving.limits import Limits
    from satchel.serving.options import ServeOptions
    from satchel.serving.server import serve

    registry = ModelRegistry()
    for name, path in specs:
        registry.add_path(name, path)
    # Loading here, before the server binds, turns a broken model into one clear line
    # and exit code 1 instead of a server that never becomes ready; with several workers
    # it is also the one load they all share.
    registry.load_pending()
    options = ServeOptions(
        batching=args.batching,
        batch=BatchOptions(max_batch_size=args.max_batch_size,
                           max_batch_delay_ms=args.max_batch_delay_ms),
        limits=Limits(max_body_size=args.max_body_size, timeout=args.timeout or None,
                      max_queue=args.max_queue or None, auth_token=token),
        metrics_interval=_env("SATCHEL_METRICS_INTERVAL", 1.0, float),
    )
    if args.log_format == "json":
        options = replace(options, limits=replace(options.limits,
                                                  json_access_log=args.access_log))
    return serve(registry, host=args.host, port=args.port, workers=args.workers,
                 debug=bool(args.debug or args.serve_debug), log_level=args.log_level,
                 access_log=args.access_log, options=options, log_format=args.log_format,
                 drain_timeout=args.drain_timeout)
