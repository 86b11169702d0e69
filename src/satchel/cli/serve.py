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

from satchel.cli._env_options import add_env_options
from satchel.cli._load_options import add_load_options, load_options

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


def _from_env(args: argparse.Namespace) -> None:
    """Fill every option not given on the command line from its variable or default."""
    defaults = _defaults()
    for dest, (var, convert) in ENV.items():
        if getattr(args, dest) is None:
            setattr(args, dest, _env(var, defaults[dest], convert))


def add_parser(sub: Any) -> None:
    """Register the subcommand (defaults and choices come from the options classes, a
    light import: dataclasses only)."""
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
                   default=_env("SATCHEL_LOG_SAMPLE", 0.01, float),
                   help="fraction of requests logged with --log-payloads (default 0.01)")
    g.add_argument("--log-redact", metavar="COL,COL", default=os.environ.get(
                   "SATCHEL_LOG_REDACT", ""),
                   help="input columns never written to the payload log")
    g.add_argument("--log-rotate-mb", type=float, metavar="MB",
                   default=_env("SATCHEL_LOG_ROTATE_MB", 64.0, float),
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


def model_specs(raw: list[str] | None, name: str | None, *,
                required: bool = True) -> list[tuple[str, str]]:
    """``[NAME=]PATH`` values as (name, path) pairs; a bare path is named ``name`` or after
    its directory."""
    from satchel.serving.server.repository import default_name

    if not raw:
        env = os.environ.get("SATCHEL_MODEL", "")
        raw = [s for s in (part.strip() for part in env.split(",")) if s]
    if not raw:
        if not required:
            return []
        raise SystemExit("satchel serve: give a model directory with -m (or SATCHEL_MODEL), "
                         "or a folder of them with --model-repository")
    out = []
    for spec in raw:
        left, sep, right = spec.partition("=")
        if sep and _NAME.fullmatch(left) and not Path(spec).exists():
            out.append((left, right))
        elif spec.startswith("models:"):
            from satchel.registry.uri import parse

            out.append((name if name and len(raw) == 1 else parse(spec).name, spec))
        else:
            out.append((name if name and len(raw) == 1 else default_name(spec), spec))
    return out


def _monitor_options(args: argparse.Namespace) -> Any:
    from satchel.serving.monitoring.options import MonitorOptions, parse_duration

    window = MonitorOptions().window
    if args.monitor_window:
        try:
            window = parse_duration(args.monitor_window)
        except ValueError as exc:
            raise SystemExit(f"satchel serve: --monitor-window: {exc}") from None
    return MonitorOptions(enabled=args.monitor, window=window)


def _payload_options(args: argparse.Namespace) -> Any:
    if not args.log_payloads:
        return None
    from satchel.serving.monitoring.options import PayloadLogOptions, parse_duration
    from satchel.serving.monitoring.payloads import check_directory

    try:
        every = parse_duration(args.log_rotate_every)
    except ValueError as exc:
        raise SystemExit(f"satchel serve: --log-rotate-every: {exc}") from None
    if not 0 < args.log_rotate_mb < 1e6:  # also refuses nan
        raise SystemExit(f"satchel serve: --log-rotate-mb must be more than 0 and less "
                         f"than 1,000,000 MB, not {args.log_rotate_mb:g}")
    try:
        options = PayloadLogOptions(
            directory=args.log_payloads, sample=args.log_sample,
            redact=tuple(c.strip() for c in args.log_redact.split(",") if c.strip()),
            rotate_seconds=every, rotate_bytes=max(1, int(args.log_rotate_mb * 2**20)))
    except ValueError as exc:
        raise SystemExit(f"satchel serve: --log-sample: {exc}") from None
    check_directory(options.directory)  # not writable: one clear line now, not a crash later
    return options


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
    _launch_env_workers(args)
    from satchel.serving.server.options import (
        BatchOptions,
        Limits,
        ProcessOptions,
        ServeOptions,
    )

    try:
        process = ProcessOptions(host=args.host, port=args.port, workers=args.workers,
                                 drain_timeout=args.drain_timeout, log_level=args.log_level,
                                 log_format=args.log_format, access_log=args.access_log,
                                 header_timeout=args.header_timeout,
                                 idle_timeout=args.idle_timeout,
                                 max_connections=args.max_connections or None)
        options = ServeOptions(
            batching=args.batching,
            batch=BatchOptions(max_batch_size=args.max_batch_size,
                               max_batch_delay_ms=args.max_batch_delay_ms),
            limits=Limits(max_body_size=args.max_body_size, timeout=args.timeout or None,
                          max_queue=args.max_queue or None, auth_token=_token(args),
                          max_rows=args.max_rows or None,
                          predict_threads=args.predict_threads,
                          max_decoded_bytes=args.max_decoded_size or None,
                          json_access_log=args.log_format == "json" and args.access_log),
            metrics_interval=_env("SATCHEL_METRICS_INTERVAL", 1.0, float),
            grpc_port=args.grpc_port, grpc_host=args.host,
            monitor=_monitor_options(args),
            payload_log=_payload_options(args),
            **_follow(args),
        )
    except ValueError as exc:
        # the options name their field first; say which flag and variable set it
        field, _, rest = str(exc).partition(" ")
        if field in ENV:
            field = f"--{field.replace('_', '-')}/{ENV[field][0]}"
        raise SystemExit(f"satchel serve: {field} {rest}") from None
    if args.grpc_port is not None:
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            raise SystemExit("satchel serve: --grpc-port needs grpcio and protobuf: "
                             "pip install 'satchel[grpc]'")
    repository = _repository(args)
    # Loading here, before the server binds, turns a broken model into one clear line
    # and exit code 1 instead of a server that never becomes ready; with several workers
    # it is also the one load they all share.
    repository.load_pending()
    from satchel.serving.server.follow import served_version

    for served in repository:
        # models:/ sources report the registry version they resolved to (V2 metadata).
        if served.version is None and served_version(served.model) is not None:
            served.version = served_version(served.model)
    from satchel.serving.server.run import serve

    return serve(repository, options=options, process=process,
                 debug=bool(args.debug or args.serve_debug))


def _repository(args: argparse.Namespace) -> Any:
    from satchel.serving.server.repository import ModelRepository

    root = args.model_repository
    if root is not None and not Path(root).is_dir():
        raise SystemExit(f"satchel serve: --model-repository {root!r} is not a directory")
    specs = model_specs(args.model, args.name, required=root is None)
    repository = ModelRepository(root, **load_options(args)) if root is not None \
        else ModelRepository()
    names = [n for n, _ in specs] + [m.name for m in repository]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SystemExit(f"satchel serve: two models are named '{dup[0]}'; name each with "
                         "-m NAME=PATH")
    if args.default is not None:
        if args.default not in names:
            raise SystemExit(f"satchel serve: --default '{args.default}' is not one of the "
                             f"served models {names}")
    from satchel.cli._env_options import env_manager

    if env_manager(args) == "venv":
        if root is not None:
            raise SystemExit("satchel serve: --env-manager venv takes models given with -m, "
                             "not --model-repository")
        _add_env_models(args, repository, specs)
        if args.default is not None:
            repository.set_default(args.default)
        return repository
    for name, path in specs:
        repository.add_path(name, path, **load_options(args))
    if args.default is not None:
        repository.set_default(args.default)
    return repository


def _add_env_models(args: argparse.Namespace, repository: Any,
                    specs: list[tuple[str, str]]) -> None:
    """Each model predicts in a worker inside its own environment (models sharing one
    share a worker); the workers stop when this process exits.

    With ``--workers N`` the model workers start here, before the HTTP workers are
    forked, and every HTTP worker talks to them (its own connections): each model is
    loaded once per environment, as ``--workers`` shares one loaded model without
    environments, and this process, the supervisor, restarts a model worker that dies.
    """
    import atexit

    from satchel.cli._env_options import env_cache
    from satchel.serving.server.env_workers import launch_workers

    launch = getattr(args, "env_launch", None)
    if launch is None:
        launch = launch_workers(specs, env_cache(args), load_options(args))
        for w in launch.workers:
            atexit.register(w.stop)
    imports: list[Any] = []
    models, _ = launch.wait(while_loading=lambda: imports.append(_import_front()))
    if (args.workers or 1) > 1:
        imports[0].join()  # HTTP workers are forked next: no import half done in a thread
    for name, _ in specs:
        repository.add(name, models[name])
    _exit_cleanly_on_sigterm()


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the atexit handlers that stop the model workers
    and remove their socket directories run: uvicorn handles SIGTERM, shuts down, then
    raises it again, and its default action would end the process without them (the
    workers die with it anyway; their directories were left in /tmp)."""
    import signal

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def exit_(signum: int, frame: Any) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, exit_)


def _launch_env_workers(args: argparse.Namespace) -> None:
    """With ``--env-manager venv``, start the model workers first thing: they load their
    models while this process parses its options and imports the server (a warm start
    is then about one model load, not a model load after the front's start-up).
    Anything wrong with the model list is left to :func:`_repository` to report."""
    import atexit

    from satchel.cli._env_options import env_cache, env_manager

    if env_manager(args) != "venv" or args.model_repository is not None or not args.model:
        return
    specs = model_specs(args.model, args.name, required=True)
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        return
    from satchel.serving.server.env_workers import launch_workers

    args.env_launch = launch_workers(specs, env_cache(args), load_options(args))
    for w in args.env_launch.workers:
        atexit.register(w.stop)


def _import_front() -> Any:
    """Import the transports while the model workers load (the two overlap on separate
    cores; serially they were most of a warm start); returns the thread that imports
    what the first scoring request needs."""
    import importlib
    import threading

    for name in ("uvicorn", "satchel.serving.server.app", "satchel.serving.server.run"):
        importlib.import_module(name)

    def first_request() -> None:
        # What the first scoring request would import (pandas, the coercion policy, the
        # MLflow codec: ~0.7 s between /ping and the first prediction, measured): loaded
        # in a thread so /ping never waits for it; a request that comes sooner waits on
        # the import lock as it would have.
        for name in ("pandas", "satchel.coercion", "satchel.serving.protocols.mlflow"):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the request path reports it, if ever
                return

    thread = threading.Thread(target=first_request, name="satchel-imports", daemon=True)
    thread.start()
    return thread


def _follow(args: argparse.Namespace) -> dict[str, Any]:
    """ServeOptions fields for ``--registry-poll``: which models follow which URI."""
    if args.registry_poll is None:
        return {}
    if args.registry_poll <= 0:
        raise SystemExit("satchel serve: --registry-poll must be a positive number of seconds")
    follow = {name: path for name, path in model_specs(args.model, args.name)
              if path.startswith("models:")}
    if not follow:
        raise SystemExit("satchel serve: --registry-poll needs a models:/ source, e.g. "
                         "-m fraud=models:/fraud@champion")
    return {"follow": follow, "follow_interval": args.registry_poll}
