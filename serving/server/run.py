"""Run the scoring app under uvicorn: one process, or a supervisor and N workers.

With ``workers > 1`` the models are loaded once, here, before the workers are forked
(:mod:`satchel.serving.server.workers`), so their memory is shared; the workers report metrics
through a temporary directory that the supervisor removes when it stops.

:func:`app_from_env` remains as a uvicorn factory (``uvicorn --factory
satchel.serving.server.run:app_from_env``) for running the app under another process manager.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import socket
import tempfile
from dataclasses import replace
from typing import Any

from satchel.model import Model
from satchel.serving.server import logs
from satchel.serving.server.options import ProcessOptions, ServeOptions
from satchel.serving.server.repository import ModelRepository

ENV_MODEL = "SATCHEL_MODEL"
ENV_NAME = "SATCHEL_MODEL_NAME"
ENV_DEBUG = "SATCHEL_DEBUG"
FACTORY = "satchel.serving.server.run:app_from_env"
_TRUE = ("1", "true", "yes", "on")

log = logging.getLogger("satchel.serving")


def app_from_env() -> Any:
    """The app for the model in ``$SATCHEL_MODEL`` (a uvicorn factory)."""
    from satchel.serving.server.app import create_app

    path = os.environ.get(ENV_MODEL)
    if not path:
        raise RuntimeError(f"{ENV_MODEL} is not set: it names the model directory to serve")
    return create_app(path, name=os.environ.get(ENV_NAME) or None,
                      debug=os.environ.get(ENV_DEBUG, "").lower() in _TRUE)


def log_config(log_format: str, log_level: str, access_log: bool) -> dict[str, Any]:
    """uvicorn's logging config, with satchel's own loggers on the same handlers."""
    config = logs.log_config(log_format, log_level, access_log=access_log)
    if config is not None:
        return config
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    level = "DEBUG" if log_level == "trace" else log_level.upper()
    config["loggers"]["satchel"] = {"handlers": ["default"], "level": level,
                                    "propagate": False}
    return config


def serve(models: Model | str | ModelRepository, *, options: ServeOptions | None = None,
          process: ProcessOptions | None = None, name: str | None = None,
          debug: bool = False) -> int:
    """Serve ``models`` (a loaded Model, a directory, or a repository) until stopped.

    Returns:
        The process exit status (0 after a clean stop).

    Raises:
        OSError: the gRPC port (``options.grpc_port``) cannot be bound.
    """
    options = options or ServeOptions()
    reserved = None
    if options.grpc_port is not None:
        reserved = reserve_port(options.grpc_host, options.grpc_port, "gRPC")
        options = replace(options, grpc_port=reserved.getsockname()[1])
    try:
        return _serve(models, options, process or ProcessOptions(), name, debug)
    finally:
        if reserved is not None:
            reserved.close()


def reserve_port(host: str, port: int, what: str) -> socket.socket:
    """Claim ``port`` (any free one for 0) for a ``SO_REUSEPORT`` group before serving.

    The socket is bound but never listens, so it takes no connections: a port already
    taken fails here, once and clearly, instead of in every worker; port 0 becomes one
    number every worker shares; and no other user's socket can join the port meanwhile.

    Raises:
        OSError: the port is in use or the address cannot be bound (names both).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for {what} on {host}:{port}: "
                      f"{exc.strerror or exc}") from None
    return sock


def _serve(models: Model | str | ModelRepository, options: ServeOptions,
           process: ProcessOptions, name: str | None, debug: bool) -> int:
    import uvicorn

    from satchel.serving.server.app import create_app
    from satchel.serving.server.connections import budget, protocol_class, quiet_accept_errors

    json_logs = process.log_format == "json"
    cap, backlog = budget(process.max_connections)
    quiet_accept_errors()
    common: dict[str, Any] = {
        # slow or silent clients are closed; the process never runs out of descriptors
        "http": protocol_class(process.header_timeout, cap),
        "backlog": backlog,
        "timeout_keep_alive": process.idle_timeout,
        "log_level": process.log_level, "lifespan": "on",
        # in JSON mode satchel writes the access lines itself (with the request id)
        "access_log": process.access_log and not json_logs,
        "log_config": log_config(process.log_format, process.log_level, process.access_log),
    }
    if process.workers <= 1:
        app = create_app(models, name=name, debug=debug, options=options)
        uvicorn.run(app, host=process.host, port=process.port,
                    timeout_graceful_shutdown=max(1, round(process.drain_timeout)), **common)
        return 0
    from satchel.serving.server.workers import WorkerOptions, run_uvicorn_workers

    metrics_dir = options.metrics_dir or tempfile.mkdtemp(prefix="satchel-metrics-")
    # the workers tell each other about model loads and unloads through this directory
    control_dir = options.control_dir or tempfile.mkdtemp(prefix="satchel-control-")
    try:
        app = create_app(models, name=name, debug=debug,
                         options=replace(options, metrics_dir=metrics_dir,
                                         control_dir=control_dir))
        return run_uvicorn_workers(app, host=process.host, port=process.port,
                                   options=WorkerOptions(
                                       process.workers, process.drain_timeout,
                                       # a loop stalled this long is a hung inline call
                                       stall_timeout=max(10.0, 2 * (options.limits.timeout
                                                                    or 60.0))),
                                   **common)
    finally:
        if options.metrics_dir is None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if options.control_dir is None:
            shutil.rmtree(control_dir, ignore_errors=True)
