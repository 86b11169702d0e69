"""The ``satchel serve`` command line: its flags, their ``SATCHEL_*`` variables and their
defaults, which come from the server's options classes (written there once)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from satchel.cli._env_options import add_env_options
from satchel.cli._load_options import add_load_options


def env_value(name: str, default: Any, convert: Any = str) -> Any:
    """The variable ``name`` converted, or ``default`` when unset or blank; a value that
    does not convert ends the command naming the variable."""
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
    from satchel.serving.server.options import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_size(text: str) -> int:
    from satchel.serving.server.options import parse_size

    return parse_size(text)


def _defaults() -> dict[str, Any]:
    """Each flag's default, read from the options classes (written there once)."""
    from satchel.serving.server.options import (
        BatchOptions,
        Limits,
        ProcessOptions,
        ServeOptions,
    )

    batch, limits, process = BatchOptions(), Limits(), ProcessOptions()
    return {
        "host": process.host, "port": process.port, "workers": process.workers,
        "grpc_port": ServeOptions().grpc_port,
        "max_batch_size": batch.max_batch_size, "max_batch_delay_ms": batch.max_batch_delay_ms,
        "batching": ServeOptions().batching, "max_body_size": limits.max_body_size,
        "timeout": limits.timeout, "max_queue": limits.max_queue,
        "drain_timeout": process.drain_timeout, "log_level": process.log_level,
        "log_format": process.log_format, "header_timeout": process.header_timeout,
        "idle_timeout": process.idle_timeout, "max_connections": process.max_connections or 0,
        "max_rows": limits.max_rows or 0, "predict_threads": limits.predict_threads,
        "max_decoded_size": limits.max_decoded_bytes or 0,
    }


# option -> (environment variable, conversion), read in run(): a bad variable must not
# break every other satchel command at parser construction
ENV = {
    "port": ("SATCHEL_PORT", int),
    "grpc_port": ("SATCHEL_GRPC_PORT", int),
    "workers": ("SATCHEL_WORKERS", int),
    "max_batch_size": ("SATCHEL_MAX_BATCH_SIZE", int),
    "max_batch_delay_ms": ("SATCHEL_MAX_BATCH_DELAY_MS", float),
    "batching": ("SATCHEL_BATCHING", str),
    "max_body_size": ("SATCHEL_MAX_BODY_SIZE", _parse_size),
    "timeout": ("SATCHEL_TIMEOUT", float),
    "max_queue": ("SATCHEL_MAX_QUEUE", int),
    "drain_timeout": ("SATCHEL_DRAIN_TIMEOUT", float),
    "log_level": ("SATCHEL_LOG_LEVEL", str.lower),
    "log_format": ("SATCHEL_LOG_FORMAT", str.lower),
    "header_timeout": ("SATCHEL_HEADER_TIMEOUT", float),
    "max_rows": ("SATCHEL_MAX_ROWS", int),
    "predict_threads": ("SATCHEL_PREDICT_THREADS", int),
    "max_decoded_size": ("SATCHEL_MAX_DECODED_SIZE", _parse_size),
    "idle_timeout": ("SATCHEL_IDLE_TIMEOUT", float),
    "max_connections": ("SATCHEL_MAX_CONNECTIONS", int),
}


def from_env(args: argparse.Namespace) -> None:
    """Fill every option not given on the command line from its variable or default."""
    defaults = _defaults()
    for dest, (var, convert) in ENV.items():
        if getattr(args, dest) is None:
            setattr(args, dest, env_value(var, defaults[dest], convert))


def add_parser(sub: Any, run: Any) -> None:
    """Register the subcommand, which calls ``run`` (defaults and choices come from the
    options classes, a light import: dataclasses only)."""
    from satchel.serving.server.options import BATCHING_MODES, LOG_FORMATS, LOG_LEVELS

    d = _defaults()
    body_mib = d["max_body_size"] // 2**20
    p = sub.add_parser(
        "serve", help="serve models over REST (MLflow protocol and KServe V2)",
        description="Serve model directories over HTTP: /invocations, /ping, /health, "
        "/version, the Open Inference Protocol under /v2, /metrics, /openapi.json and /docs.")
    # SageMaker starts a serving container as `docker run IMAGE serve`: the image's
    # entrypoint is `satchel serve -m /opt/model`, so that word arrives here; it names
    # what this command does anyway and is accepted and ignored (no other word is).
    p.add_argument("sagemaker_command", nargs="?", choices=("serve",), help=argparse.SUPPRESS)
    p.add_argument("-m", "--model", action="append", metavar="[NAME=]PATH",
                   help="a model directory, optionally named (repeat for several models; "
                   "env SATCHEL_MODEL, comma-separated)")
    add_load_options(p)
    p.add_argument("--model-repository", metavar="DIR",
                   default=os.environ.get("SATCHEL_MODEL_REPOSITORY") or None,
                   help="serve every model directory in DIR, named after its folder; "
                   "POST /v2/repository/models/NAME/load and /unload load and unload them "
                   "without a restart (env SATCHEL_MODEL_REPOSITORY)")
    p.add_argument("--default", default=os.environ.get("SATCHEL_DEFAULT_MODEL") or None,
                   metavar="NAME", help="the model /invocations scores (env "
                   "SATCHEL_DEFAULT_MODEL; default: the first)")
    p.add_argument("--host", default=os.environ.get("SATCHEL_HOST", d["host"]),
                   help=f"address to listen on (env SATCHEL_HOST; default {d['host']})")
    p.add_argument("--port", type=int,
                   help=f"port (env SATCHEL_PORT; default {d['port']})")
    p.add_argument("--registry-poll", type=float, default=None, metavar="SECONDS",
                   help="re-resolve models:/ sources (e.g. -m fraud=models:/fraud@champion) "
                   "every SECONDS and hot-swap a new version after verifying it")
    p.add_argument("--grpc-port", type=int, metavar="PORT",
                   help="also serve the Open Inference Protocol over gRPC on this port "
                   "(KServe's inference.GRPCInferenceService), with the same models, token, "
                   "limits, batching and metrics; every worker listens on it (env "
                   "SATCHEL_GRPC_PORT; default: no gRPC; needs satchel[grpc])")
    p.add_argument("--workers", type=int,
                   help="worker processes sharing the loaded models (env SATCHEL_WORKERS; "
                   f"default {d['workers']})")
    p.add_argument("--name", default=os.environ.get("SATCHEL_MODEL_NAME") or None,
                   help="name of a single unnamed model under /v2/models (env "
                   "SATCHEL_MODEL_NAME; default: the directory's name)")
    g = p.add_argument_group("batching")
    g.add_argument("--max-batch-size", type=int, metavar="ROWS",
                   help="most rows merged into one predict call (env SATCHEL_MAX_BATCH_SIZE; "
                   f"default {d['max_batch_size']})")
    g.add_argument("--max-batch-delay-ms", type=float, metavar="MS",
                   help="longest a request waits for others to join its batch (env "
                   f"SATCHEL_MAX_BATCH_DELAY_MS; default {d['max_batch_delay_ms']:g})")
    g.add_argument("--batching", choices=BATCHING_MODES,
                   help="auto: batch models that declare rows independent; on: every model; "
                   f"off: none (env SATCHEL_BATCHING; default {d['batching']})")
    g.add_argument("--no-batching", dest="batching", action="store_const", const="off",
                   help="the same as --batching off")
    g = p.add_argument_group("limits and access")
    g.add_argument("--max-body-size", type=_size, metavar="SIZE",
                   help="largest request body, e.g. 100MiB (env SATCHEL_MAX_BODY_SIZE; "
                   f"default {body_mib}MiB)")
    g.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="seconds until a request answers 504; 0: no limit (env "
                   f"SATCHEL_TIMEOUT; default {d['timeout']:g})")
    g.add_argument("--max-queue", type=int, metavar="N",
                   help="scoring requests a worker holds at once before answering 503; 0: no "
                   f"limit (env SATCHEL_MAX_QUEUE; default {d['max_queue']})")
    g.add_argument("--auth-token-file", metavar="PATH",
                   default=os.environ.get("SATCHEL_AUTH_TOKEN_FILE") or None,
                   help="require 'Authorization: Bearer <token>' with the token in this file, "
                   "on every path but liveness (env SATCHEL_AUTH_TOKEN_FILE, or the token "
                   "itself in SATCHEL_AUTH_TOKEN)")
    g.add_argument("--predict-threads", type=int, metavar="N",
                   help="worker threads per process for predict calls; a call that timed out "
                   "keeps its thread until it ends, and when all are busy requests get 503 "
                   "(with --workers, a worker mostly held by such calls is replaced) (env "
                   f"SATCHEL_PREDICT_THREADS; default {d['predict_threads']})")
    g.add_argument("--max-rows", type=int, metavar="N",
                   help="most rows one request may decode to, else 413; 0: no limit (env "
                   "SATCHEL_MAX_ROWS; default 0)")
    g.add_argument("--max-decoded-size", type=_size, metavar="SIZE",
                   help="most bytes one request may decode to, else 413 (a Parquet body is "
                   "measured from its metadata first); default 8 x --max-body-size (env "
                   "SATCHEL_MAX_DECODED_SIZE)")
    g.add_argument("--header-timeout", type=float, metavar="SECONDS",
                   help="close a connection that has not sent a request's headers within "
                   f"this time (env SATCHEL_HEADER_TIMEOUT; default {d['header_timeout']:g})")
    g.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="close a keep-alive connection idle this long after a reply (env "
                   f"SATCHEL_IDLE_TIMEOUT; default {d['idle_timeout']:g})")
    g.add_argument("--max-connections", type=int, metavar="N",
                   help="open connections at most; at the cap the oldest one still waiting "
                   "for its headers is closed, else the new one gets 503; 0: what the "
                   "descriptor limit allows (env SATCHEL_MAX_CONNECTIONS; default 0)")
    g.add_argument("--drain-timeout", type=float, metavar="SECONDS",
                   help="on SIGTERM, seconds to finish requests in flight (env "
                   f"SATCHEL_DRAIN_TIMEOUT; default {d['drain_timeout']:g})")
    g = p.add_argument_group("monitoring")
    g.add_argument("--monitor-window", metavar="DURATION",
                   default=os.environ.get("SATCHEL_MONITOR_WINDOW") or None,
                   help="drift figures cover this much recent traffic, older data weighing "
                   "less, e.g. 15m, 1h (env SATCHEL_MONITOR_WINDOW; default 1h)")
    g.add_argument("--no-monitor", dest="monitor", action="store_false",
                   default=_env_flag("SATCHEL_MONITOR", True),
                   help="do not measure drift (env SATCHEL_MONITOR=0)")
    g.add_argument("--log-payloads", metavar="DIR",
                   default=os.environ.get("SATCHEL_LOG_PAYLOADS") or None,
                   help="write a sample of requests and predictions to rotating Parquet files "
                   "in DIR (off by default; env SATCHEL_LOG_PAYLOADS)")
    g.add_argument("--log-sample", type=float, metavar="FRACTION",
                   default=env_value("SATCHEL_LOG_SAMPLE", 0.01, float),
                   help="fraction of requests logged with --log-payloads (default 0.01)")
    g.add_argument("--log-redact", metavar="COL,COL", default=os.environ.get(
                   "SATCHEL_LOG_REDACT", ""),
                   help="input columns never written to the payload log")
    g.add_argument("--log-rotate-mb", type=float, metavar="MB",
                   default=env_value("SATCHEL_LOG_ROTATE_MB", 64.0, float),
                   help="start a new payload log file once one holds this many MB "
                   "(env SATCHEL_LOG_ROTATE_MB; default 64)")
    g.add_argument("--log-rotate-every", metavar="DURATION",
                   default=os.environ.get("SATCHEL_LOG_ROTATE_EVERY") or "1h",
                   help="or once one is this old, e.g. 15m, 1h (env "
                   "SATCHEL_LOG_ROTATE_EVERY; default 1h)")
    g = p.add_argument_group("logs")
    g.add_argument("--log-level", choices=LOG_LEVELS,
                   help=f"log level (env SATCHEL_LOG_LEVEL; default {d['log_level']})")
    g.add_argument("--log-format", choices=LOG_FORMATS,
                   help="text, or one JSON object per line (env SATCHEL_LOG_FORMAT)")
    g.add_argument("--no-access-log", dest="access_log", action="store_false",
                   default=_env_flag("SATCHEL_ACCESS_LOG", True),
                   help="do not log each request (env SATCHEL_ACCESS_LOG=0)")
    g.add_argument("--debug", dest="serve_debug", action="store_true",
                   default=_env_flag("SATCHEL_DEBUG", False),
                   help="stack traces in error replies (env SATCHEL_DEBUG=1)")
    add_env_options(p, reexec=False)
    p.set_defaults(func=run)
