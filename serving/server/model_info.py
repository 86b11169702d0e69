"""What the server tells about its models, whatever the transport: the V2 metadata
document, Triton's configuration document and the per-model statistics.

HTTP (:mod:`.pages`) and gRPC (:mod:`.grpc_service`) both answer from these, so the two
transports never disagree. The statistics come from the server's own metrics, summed
over every worker as ``/metrics`` sums them, so requests over HTTP and gRPC count alike.
"""

from __future__ import annotations

from typing import Any

from satchel.serving.protocols import v2, v2_config
from satchel.serving.server.dataplane import DataPlane
from satchel.serving.server.repository import ServedModel

_DURATION = "satchel_inference_duration_seconds"
_STAGES = "satchel_request_stage_seconds_total"


def metadata(served: ServedModel) -> dict[str, Any]:
    """``GET /v2/models/{name}``'s document (cached on the served model).

    Raises:
        ModelNotReadyError: the model is not loaded.
    """
    meta: dict[str, Any] | None = served.cache.get("v2_metadata")
    if meta is None:
        m = served.require()
        meta = served.cache["v2_metadata"] = v2.model_metadata(
            served.name, served.version, m.signature, m.flavor.name)
    return meta


def config(plane: DataPlane, served: ServedModel) -> dict[str, Any]:
    """Triton's configuration document of a served model.

    Raises:
        ModelNotReadyError: the model is not loaded.
    """
    batching = None
    batcher = plane.batcher(served)
    if batcher is not None:
        options = batcher.options  # a worker-backed model's own, larger row limit
        batching = v2_config.Batching(options.max_batch_delay_ms, options.max_batch_size)
    return v2_config.model_config(metadata(served), batching)


def statistics(plane: DataPlane, name: str | None = None,
               version: str | None = None) -> dict[str, Any]:
    """``{"model_stats": [...]}`` for one served model, or every one (``name`` None).

    Raises:
        ModelNotFoundError: no such model or version.
    """
    models = [plane.model(name, version)] if name else list(plane.repository)
    counters, hists, gauges = plane.metrics.merged()

    def hist(family: str, labels: tuple[tuple[str, str], ...]) -> tuple[float, float]:
        h = hists.get((family, labels))
        return (h[-1], h[-2]) if h else (0, 0.0)

    # per model: rows per call -> calls, and -> {stage: seconds}
    calls: dict[str, dict[int, float]] = {}
    seconds: dict[str, dict[int, dict[str, float]]] = {}
    for (family, labels), value in counters.items():
        if family == "satchel_batch_calls_total":
            named = dict(labels)
            calls.setdefault(named["model"], {})[int(named["rows"])] = value
        elif family == "satchel_batch_stage_seconds_total":
            named = dict(labels)
            seconds.setdefault(named["model"], {}).setdefault(
                int(named["rows"]), {})[named["stage"]] = value
    entries = []
    for served in models:
        model = (("model", served.name),)
        memory = gauges.get(("satchel_model_memory_bytes", model))
        counts = v2_config.Counts(
            success=hist(_DURATION, (*model, ("outcome", "success"))),
            fail=hist(_DURATION, (*model, ("outcome", "fail"))),
            compute=hist("satchel_predict_duration_seconds", model),
            rows=counters.get(("satchel_rows_predicted_total", model), 0),
            last=gauges.get(("satchel_model_last_inference_timestamp_seconds", model), 0.0),
            stages={stage: counters.get((_STAGES, (*model, ("stage", stage))), 0.0)
                    for stage in v2_config.STAGES},
            batches=tuple(
                v2_config.BatchCounts(rows, n, seconds.get(served.name, {}).get(rows, {}))
                for rows, n in calls.get(served.name, {}).items()),
            memory=int(memory) if memory is not None else None)
        entries.append(v2_config.model_statistics(served.name, served.version, counts))
    return {"model_stats": entries}
