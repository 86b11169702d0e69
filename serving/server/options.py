"""Everything a server is configured with beyond its models: every default and every
check, written once.

``satchel serve`` derives its flags' defaults and choices from these classes (each flag
with a ``SATCHEL_*`` environment fallback) and turns their ``ValueError`` into its
error line; :func:`satchel.serving.server.app.create_app` takes :class:`ServeOptions`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from satchel.serving.monitoring.options import MonitorOptions, PayloadLogOptions

BATCHING_MODES = ("auto", "on", "off")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LOG_FORMATS = ("text", "json")
LIVENESS_PATHS = frozenset({"/ping", "/health", "/v2/health/live"})
DEFAULT_MAX_BODY = 100 * 1024 * 1024
# A request may decode to this many times its body limit: JSON and CSV grow a few times
# into columns; a compressed Parquet body may claim far more, which is refused from its
# metadata before it is decoded.
DECODED_PER_BODY_BYTE = 8


@dataclass(frozen=True)
class BatchOptions:
    """How a :class:`Batcher` merges requests.

    Attributes:
        max_batch_size: most rows in one merged ``predict`` call; larger requests run alone.
        max_batch_delay_ms: longest time the oldest queued request waits for others.
        concurrency: ``predict`` calls of one model running at once (worker threads).
    """

    # Rows, not requests: 64 kept every request of 64 rows or more out of batches (a
    # 100-row request ran alone while MLServer, which counts requests, merged them).
    # 1,024 rows of a few dozen float columns is well under a megabyte per call.
    max_batch_size: int = 1024
    max_batch_delay_ms: float = 5.0
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_batch_delay_ms < 0:
            raise ValueError("max_batch_delay_ms must not be negative")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


@dataclass(frozen=True)
class Limits:
    """What the middleware enforces.

    Attributes:
        max_body_size: largest request body in bytes (None: no limit).
        timeout: seconds until the reply starts, else 504 (None: no limit).
        max_queue: most scoring requests held at once per process, being scored or
            waiting (None: no limit); past it, 503 with ``Retry-After``.
        auth_token: the bearer token every request but liveness must carry (None: open).
        open_paths: paths that need no token.
        json_access_log: write one JSON line per request to the ``satchel.access`` logger.
        retry_after: seconds suggested in ``Retry-After``.
        max_rows: most rows one request may decode to (None: no limit).
        max_decoded_bytes: most bytes one request may decode to; None derives it from
            the body limit (:data:`DECODED_PER_BODY_BYTE` times ``max_body_size``).
        predict_threads: worker threads per process for predict, decode and encode;
            calls abandoned after a timeout keep theirs until they end; a request
            finding all busy waits for one, or gets 503 when all are held by such calls.
    """

    max_body_size: int | None = DEFAULT_MAX_BODY
    timeout: float | None = 60.0
    max_queue: int | None = 1024
    auth_token: str | None = None
    open_paths: frozenset[str] = field(default=LIVENESS_PATHS)
    json_access_log: bool = False
    retry_after: int = 1
    max_rows: int | None = None
    max_decoded_bytes: int | None = None
    predict_threads: int = 16

    @property
    def decoded_bytes_limit(self) -> int | None:
        """The decoded-size cap in effect (given, or derived from the body limit)."""
        if self.max_decoded_bytes is not None:
            return self.max_decoded_bytes
        if self.max_body_size is None:
            return None
        return DECODED_PER_BODY_BYTE * self.max_body_size

    def __post_init__(self) -> None:
        if self.predict_threads < 1:
            raise ValueError("predict_threads must be at least 1")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        if self.max_decoded_bytes is not None and self.max_decoded_bytes < 1:
            raise ValueError("max_decoded_bytes must be positive")
        if self.max_body_size is not None and self.max_body_size < 1:
            raise ValueError("max_body_size must be positive")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError("timeout must not be negative")
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError("max_queue must not be negative")


@dataclass(frozen=True)
class ServeOptions:
    """How the server batches, limits, counts and documents requests.

    Attributes:
        batching: ``"auto"`` batches models whose flavor (or PythonModel) declares rows
            independent; ``"on"`` batches every model (the operator vouches for it);
            ``"off"`` never batches.
        batch: batch size and delay limits.
        limits: body size, timeout, queue bound, bearer token, JSON access log.
        metrics_dir: where worker processes share their counts (None: one process).
        control_dir: where worker processes tell each other about model loads and
            unloads (None: one process; :mod:`satchel.serving.server.control`).
        metrics_interval: seconds between a worker's metric snapshots.
        docs: serve ``/openapi.json`` and ``/docs``.
        grpc_port: also serve the Open Inference Protocol over gRPC on this port, from the
            app's event loop (None: no gRPC); with several workers, each listens on it
            (``SO_REUSEPORT``).
        grpc_host: the address the gRPC server listens on.
        monitor: drift windows against each model's reference profile.
        payload_log: opt-in sampled request logging (None: off, the default).
        follow: model name -> ``models:/`` URI to re-resolve every ``follow_interval``
            seconds; when it names another version, that version is loaded beside the
            old one, verified, checked on its input example and swapped in
            (:mod:`satchel.serving.server.follow`).
        follow_interval: seconds between registry polls.
    """

    batching: str = "auto"
    batch: BatchOptions = field(default_factory=BatchOptions)
    limits: Limits = field(default_factory=Limits)
    metrics_dir: str | None = None
    control_dir: str | None = None
    metrics_interval: float = 1.0
    docs: bool = True
    grpc_port: int | None = None
    grpc_host: str = "127.0.0.1"
    monitor: MonitorOptions = field(default_factory=MonitorOptions)
    payload_log: PayloadLogOptions | None = None
    follow: dict[str, str] = field(default_factory=dict)
    follow_interval: float = 30.0

    def __post_init__(self) -> None:
        if self.batching not in BATCHING_MODES:
            raise ValueError(f"batching must be one of {BATCHING_MODES}, not {self.batching!r}")
        if self.grpc_port is not None and not 0 <= self.grpc_port <= 65535:
            raise ValueError("grpc_port must be between 0 and 65535")


@dataclass(frozen=True)
class ProcessOptions:
    """How the server process runs: address, workers, shutdown and logs.

    Attributes:
        host, port: where to listen.
        workers: worker processes sharing the loaded models.
        drain_timeout: seconds to finish requests in flight after SIGTERM.
        log_level: one of :data:`LOG_LEVELS`.
        log_format: ``"text"`` or ``"json"`` (one object per line).
        access_log: log each request.
        header_timeout: seconds a connection may take to send a request's headers
            (from opening, or from its previous reply) before it is closed.
        idle_timeout: seconds a keep-alive connection may sit idle after a reply.
        max_connections: open connections at most (None: what the descriptor limit
            leaves room for); at the cap the oldest one still waiting for headers is
            closed, or the new one gets 503.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    drain_timeout: float = 30.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = True
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    max_connections: int | None = None

    def __post_init__(self) -> None:
        if self.header_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("header_timeout and idle_timeout must be positive")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.drain_timeout < 0:
            raise ValueError("drain_timeout must not be negative")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {list(LOG_LEVELS)}, not "
                             f"{self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {list(LOG_FORMATS)}, not "
                             f"{self.log_format!r}")


_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_SCALE = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from ``"1048576"``, ``"100MiB"``, ``"10MB"``, ``"2g"`` (KiB/MiB/GiB are 1024-based,
    k/M/G and kB/MB/GB 1000-based).

    Raises:
        ValueError: not a size.
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 100MiB, 10MB)")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(m.group(1)) * _SCALE[unit]
