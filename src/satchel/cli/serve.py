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

from satchel.cli._load_options import load_options
from satchel.cli._serve_args import ENV, env_value, from_env
from satchel.cli._serve_args import add_parser as _add_parser

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def add_parser(sub: Any) -> None:
    """Register ``satchel serve`` (its flags are declared in :mod:`._serve_args`)."""
    _add_parser(sub, run)


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
    from_env(args)
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
            metrics_interval=env_value("SATCHEL_METRICS_INTERVAL", 1.0, float),
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
    from satchel.serving.server.env_models import launch_workers

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
    from satchel.serving.server.env_models import launch_workers

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
