"""The protocol-neutral core of the scoring server: which models are served, and what a
request does to one of them.

Transports (the REST app, later others) call these functions with bytes and get bytes
back, or a typed :class:`~satchel.errors.SatchelError`; status codes are theirs to pick.
Each request runs in three steps a batcher can split apart: decode (bytes to model
input), predict (``Model.predict_detailed``, the one coercion policy), encode.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satchel.errors import (
    InputFormatError,
    ModelNotFoundError,
    ModelNotReadyError,
    SatchelError,
)
from satchel.model import Model, Prediction, load_model
from satchel.serving import codecs, v2

log = logging.getLogger("satchel.serving")

LOADING, READY, FAILED = "loading", "ready", "failed"


@dataclass(eq=False)
class ServedModel:
    """One model in the registry, with its load state and measured predict cost.

    Attributes:
        name: the name it is served under (``/v2/models/{name}``).
        version: its version, or None (then no ``/versions/{v}`` path matches).
        model: the loaded model (None until ``state == "ready"``).
        path: the directory it is loaded from, when loaded by the registry.
        state: ``"loading"``, ``"ready"`` or ``"failed"``.
        error: why loading failed.
        predict_seconds: moving average of ``predict``'s wall time (None before the first).
        predict_cpu_seconds: moving average of the CPU time the process spent in it.
        load_seconds: how long loading took (None when loaded elsewhere).
    """

    name: str
    version: str | None = None
    model: Model | None = None
    path: str | None = None
    state: str = LOADING
    error: str | None = None
    predict_seconds: float | None = None
    predict_cpu_seconds: float | None = None
    calls: int = 0
    load_seconds: float | None = None
    load_options: dict[str, Any] = field(default_factory=dict)
    _metadata: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.state == READY

    def require(self) -> Model:
        """The loaded model, or ModelNotReadyError naming the state."""
        if self.model is None or self.state != READY:
            why = f"failed to load: {self.error}" if self.state == FAILED else "is still loading"
            raise ModelNotReadyError(f"model '{self.name}' {why}")
        return self.model

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata (computed once)."""
        if self._metadata is None:
            model = self.require()
            self._metadata = v2.model_metadata(self.name, self.version, model.signature,
                                               model.flavor.name)
        return self._metadata

    def note_predict(self, seconds: float, cpu_seconds: float | None) -> None:
        # Exponential moving averages: cheap, and they follow a model that slows down.
        # Wall time alone misleads on a busy machine (time spent preempted); CPU time
        # alone misses a model that waits (on I/O, on a lock): executors look at both.
        wall, cpu = self.predict_seconds, self.predict_cpu_seconds
        self.predict_seconds = seconds if wall is None else 0.9 * wall + 0.1 * seconds
        if cpu_seconds is not None:
            self.predict_cpu_seconds = (cpu_seconds if cpu is None
                                        else 0.8 * cpu + 0.2 * cpu_seconds)


class ModelRegistry:
    """The models a server serves, by name; the first one added is the default.

    ``/invocations`` scores the default model; the V2 routes pick one by name.
    """

    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}
        self._default: str | None = None
        self._lock = threading.Lock()

    def add(self, name: str, model: Model, *, version: str | None = None,
            load_seconds: float | None = None) -> ServedModel:
        """Serve an already loaded model under ``name``."""
        served = ServedModel(name, version, model, str(model.path), READY,
                             load_seconds=load_seconds)
        self._put(served)
        return served

    def add_path(self, name: str, path: str | os.PathLike[str], *, version: str | None = None,
                 **load_options: Any) -> ServedModel:
        """Register a model directory to load later with :meth:`load_pending`."""
        served = ServedModel(name, version, None, str(path), LOADING,
                             load_options=dict(load_options))
        self._put(served)
        return served

    def _put(self, served: ServedModel) -> None:
        with self._lock:
            if served.name in self._models:
                raise ValueError(f"a model named '{served.name}' is already served")
            self._models[served.name] = served
            if self._default is None:
                self._default = served.name

    def load_pending(self, *, raise_errors: bool = True) -> None:
        """Load every model still in the ``loading`` state, then freeze the GC heap.

        With ``raise_errors=False`` a failure marks the model ``failed`` (its readiness
        then answers why) instead of raising.
        """
        for served in list(self._models.values()):
            if served.state != LOADING or served.path is None:
                continue
            start = time.perf_counter()
            try:
                served.model = load_model(served.path, **served.load_options)
            except SatchelError as exc:
                served.state, served.error = FAILED, str(exc)
                if raise_errors:
                    raise  # the caller reports it (the CLI in one line)
                log.error("model '%s' failed to load: %s", served.name, exc)
                continue
            served.load_seconds = time.perf_counter() - start
            served.state = READY
        freeze_heap()

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model served as ``name`` (and ``version``, when given).

        Raises:
            ModelNotFoundError: no such model or version.
        """
        served = self._models.get(name)
        if served is None:
            raise ModelNotFoundError(f"model '{name[:100]}' is not served here; served: "
                                     f"{sorted(self._models)[:20]}", name=name)
        if version is not None and version != served.version:
            have = f"version '{served.version}'" if served.version else "no version"
            raise ModelNotFoundError(f"model '{name[:100]}' has no version '{version[:40]}' "
                                     f"(it has {have})", name=name, version=version)
        return served

    @property
    def default(self) -> ServedModel:
        """The model ``/invocations`` scores."""
        if self._default is None:
            raise ModelNotFoundError("no model is served", name="")
        return self._models[self._default]

    @property
    def ready(self) -> bool:
        """True when every model is loaded."""
        return bool(self._models) and all(m.ready for m in self._models.values())

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)


def freeze_heap() -> None:
    """Move everything allocated so far (the model) out of the GC's reach.

    A loaded model is a large, long-lived heap; without this every full collection walks
    it during requests, which is what makes tail latencies spike.
    """
    gc.collect()
    gc.freeze()


def default_name(path: str | os.PathLike[str]) -> str:
    """The name a model directory is served under when none is given: its base name."""
    return Path(path).resolve().name or "model"


# --- requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """A scored request: the reply body and what the policy did on the way."""

    body: bytes
    dropped_columns: tuple[str, ...] = ()
    unknown_params: tuple[str, ...] = ()
    rows: int = 0


def predict(served: ServedModel, data: Any, params: dict[str, Any] | None) -> Prediction:
    """``Model.predict_detailed``, timed, with stray parse errors made typed.

    Raises:
        SignatureError: the input or params do not fit the signature.
        PredictionError: the model raised.
        InputFormatError: the input has a shape nothing can read as the model's input.
    """
    model = served.require()
    # CPU time is a syscall, not a vDSO read like perf_counter: sample 1 call in 16.
    served.calls += 1
    timed = served.calls <= 4 or not served.calls % 16
    start, start_cpu = time.perf_counter(), time.process_time() if timed else 0.0
    try:
        result = model.predict_detailed(data, params)
    except SatchelError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        # Model errors arrive as PredictionError; anything else escaped while reading
        # the input (pandas or numpy refusing its shape) and is the client's to fix.
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise InputFormatError(f"the input cannot be read as this model's input: "
                               f"{first}") from None
    served.note_predict(time.perf_counter() - start,
                        time.process_time() - start_cpu if timed else None)
    return result


def decode_invocation(served: ServedModel, body: bytes,
                      content_type: str | None) -> codecs.ParsedInput:
    """Parse an ``/invocations`` body for this model (its schema guides CSV and rows)."""
    sig = served.require().signature
    return codecs.parse_request(body, content_type, sig.inputs if sig is not None else None)


def encode_invocation(result: Prediction) -> Result:
    """The reply ``{"predictions": ...}`` to a prediction."""
    return Result(codecs.format_predictions(result.output), result.dropped_columns,
                  result.unknown_params, result.rows)


def invocations(served: ServedModel, body: bytes, content_type: str | None) -> Result:
    """MLflow's scoring protocol: parse, predict, reply ``{"predictions": ...}``."""
    parsed = decode_invocation(served, body, content_type)
    return encode_invocation(predict(served, parsed.data, parsed.params))


def decode_infer(served: ServedModel, body: bytes) -> v2.InferRequest:
    """Parse an ``infer`` body into the model's input (its schema arranges the tensors)."""
    sig = served.require().signature
    return v2.decode_infer(body, sig.inputs if sig is not None else None)


def encode_infer(served: ServedModel, request: v2.InferRequest, result: Prediction) -> Result:
    """The inference response to a prediction (outputs named after the output schema)."""
    sig = served.require().signature
    reply = v2.encode_infer(result.output, model_name=served.name,
                            model_version=served.version, request=request,
                            output_schema=sig.outputs if sig is not None else None)
    return Result(reply, result.dropped_columns, result.unknown_params, result.rows)


def infer(served: ServedModel, body: bytes) -> Result:
    """The Open Inference Protocol's ``infer``: decode tensors, predict, encode outputs."""
    request = decode_infer(served, body)
    return encode_infer(served, request, predict(served, request.data, request.params))
