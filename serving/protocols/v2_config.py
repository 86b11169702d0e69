"""Triton's model configuration and statistics documents, as the Open Inference Protocol's
extensions serve them (``GET /v2/models/{name}/config`` and ``/stats``, gRPC
``ModelConfig`` and ``ModelStatistics``).

Pure functions over plain values, no server and no transport. The configuration is
derived from the same metadata document ``GET /v2/models/{name}`` answers (so the two
never disagree) plus how the server batches the model; the statistics entry from the
counts the server's metrics keep. Both are shaped as Triton's JSON (the protobuf JSON
mapping with the proto's field names), which the gRPC codec turns into messages as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# V2 wire datatype -> Triton's configuration type name
CONFIG_TYPES = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64", "BYTES": "TYPE_STRING",
}
BACKEND = "satchel"


@dataclass(frozen=True)
class Batching:
    """How the server batches one model (None in :func:`model_config`: it does not).

    Attributes:
        max_delay_ms: longest a request waits for others to join its batch.
        max_rows: most rows merged into one predict call.
    """

    max_delay_ms: float
    max_rows: int


def model_config(meta: Mapping[str, Any], batching: Batching | None) -> dict[str, Any]:
    """A model's configuration from its V2 metadata document.

    ``max_batch_size`` is 0: a satchel model has no implicit batch dimension, every
    tensor's ``dims`` hold the rows first (-1), exactly as its metadata's ``shape``. How
    the server merges requests shows as ``dynamic_batching`` (its delay) and the
    ``max_batch_rows`` parameter.
    """
    config: dict[str, Any] = {
        "name": meta["name"],
        "platform": meta.get("platform", ""),
        "backend": BACKEND,
        "max_batch_size": 0,
        "input": [_tensor(t, with_optional=True) for t in meta.get("inputs", [])],
        "output": [_tensor(t, with_optional=False) for t in meta.get("outputs", [])],
    }
    if batching is not None:
        config["dynamic_batching"] = {
            "max_queue_delay_microseconds": round(batching.max_delay_ms * 1000)}
        config["parameters"] = {"max_batch_rows": {"string_value": str(batching.max_rows)}}
    return config


def _tensor(meta: Mapping[str, Any], *, with_optional: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": meta["name"],
                           "data_type": CONFIG_TYPES.get(meta["datatype"], "TYPE_INVALID"),
                           "dims": [int(d) for d in meta["shape"]]}
    if with_optional and meta.get("optional"):
        out["optional"] = True
    return out


STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class BatchCounts:
    """Predict calls of one size, summed over the server's workers.

    Attributes:
        rows: rows in each call (Triton's ``batch_size``).
        calls: how many calls.
        seconds: seconds in ``compute_input`` (merging requests' inputs, or decoding a
            request run alone), ``compute_infer`` and ``compute_output``.
    """

    rows: int
    calls: float
    seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Counts:
    """One model's counts, summed over the server's workers.

    Attributes:
        success, fail: (requests, seconds) answered, and refused or failed.
        compute: (predict calls, seconds in them).
        rows: rows scored.
        last: Unix time of the last request (0: none yet).
        stages: seconds successful requests spent in each of :data:`STAGES`.
        batches: predict calls by size.
        memory: bytes the model took when it loaded (None: not measured).
    """

    success: tuple[float, float] = (0, 0.0)
    fail: tuple[float, float] = (0, 0.0)
    compute: tuple[float, float] = (0, 0.0)
    rows: float = 0
    last: float = 0.0
    stages: Mapping[str, float] = field(default_factory=dict)
    batches: tuple[BatchCounts, ...] = ()
    memory: int | None = None


def model_statistics(name: str, version: str | None, counts: Counts) -> dict[str, Any]:
    """One ``model_stats`` entry, as Triton's: requests and their total time
    (``success``, ``fail``); per successful request the time in each stage (``queue``,
    ``compute_input``, ``compute_infer``, ``compute_output``, each counted once per
    request); predict calls (``execution_count``) and, by rows per call,
    ``batch_stats``; rows (``inference_count``); the model's memory (``memory_usage``,
    when measured)."""

    def duration(count: float, seconds: float) -> dict[str, int]:
        return {"count": int(count), "ns": int(round(seconds * 1e9))}

    served = counts.success[0]
    stats: dict[str, Any] = {
        "name": name,
        "version": version or "",
        "last_inference": int(counts.last * 1000),
        "inference_count": int(counts.rows),
        "execution_count": int(counts.compute[0]),
        "inference_stats": {
            "success": duration(*counts.success), "fail": duration(*counts.fail),
            **{stage: duration(served, counts.stages.get(stage, 0.0)) for stage in STAGES},
        },
        "batch_stats": [
            {"batch_size": b.rows,
             **{stage: duration(b.calls, b.seconds.get(stage, 0.0)) for stage in STAGES[1:]}}
            for b in sorted(counts.batches, key=lambda b: b.rows)],
    }
    if counts.memory is not None:
        stats["memory_usage"] = [{"type": "CPU", "id": 0, "byte_size": counts.memory}]
    return stats
