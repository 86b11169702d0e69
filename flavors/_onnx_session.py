"""onnxruntime session settings of the ONNX flavor: the execution providers and the
``onnx_session_options`` a manifest may carry, checked at save and applied at load."""

from __future__ import annotations

from typing import Any

# MLflow's default, written when the caller names none, so a GPU host uses its GPU.
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
CPU = "CPUExecutionProvider"
# Available in CPU wheels but only runs remote "azure" operators: never a default.
_NOT_DEFAULT = {"AzureExecutionProvider", CPU}
SESSION_KEYS = (
    "intra_op_num_threads",
    "inter_op_num_threads",
    "execution_mode",
    "graph_optimization_level",
    "extra_session_config",
)
_OPT_LEVELS = (0, 1, 2, 3, 99)


def check_providers(providers: Any) -> list[Any]:
    """The ``providers`` argument of a save, checked: names or (name, options) pairs."""
    if isinstance(providers, str) or not isinstance(providers, (list, tuple)) or not providers:
        raise ValueError("providers must be a non-empty list of provider names")
    out: list[Any] = []
    for p in providers:
        if isinstance(p, str):
            out.append(p)
        elif (
            isinstance(p, (list, tuple))
            and len(p) == 2
            and isinstance(p[0], str)
            and isinstance(p[1], dict)
        ):
            out.append([p[0], dict(p[1])])  # YAML has no tuples; MLflow reads lists back
        else:
            raise ValueError(f"provider {p!r} is neither a name nor a (name, options) pair")
    return out


def check_session_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``onnx_session_options`` of a save, checked key by key (MLflow's five keys only)."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise TypeError(f"onnx_session_options must be a dict, not {type(options).__name__}")
    unknown = sorted(set(options) - set(SESSION_KEYS))
    if unknown:
        raise ValueError(f"unknown onnx_session_options {unknown}; known: {list(SESSION_KEYS)}")
    for key in ("intra_op_num_threads", "inter_op_num_threads"):
        v = options.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ValueError(f"onnx_session_options {key} must be an integer >= 0, not {v!r}")
    mode = options.get("execution_mode")
    if mode is not None and str(mode).lower() not in ("sequential", "parallel"):
        raise ValueError(f"execution_mode must be 'sequential' or 'parallel', not {mode!r}")
    level = options.get("graph_optimization_level")
    if level is not None and level not in _OPT_LEVELS:
        raise ValueError(f"graph_optimization_level must be one of {_OPT_LEVELS}, not {level!r}")
    extra = options.get("extra_session_config")
    if extra is not None and not (
        isinstance(extra, dict) and all(isinstance(k, str) for k in extra)
    ):
        raise ValueError("extra_session_config must be a dict with string keys")
    return {k: (str(v) if k == "execution_mode" else v) for k, v in options.items()}


def session_options(options: dict[str, Any] | None) -> Any:
    """An ``onnxruntime.SessionOptions`` from the manifest's ``onnx_session_options``.

    Keys other than MLflow's five are ignored (MLflow applies only those five too).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not options:
        return so
    for key in ("intra_op_num_threads", "inter_op_num_threads"):
        if options.get(key):
            setattr(so, key, int(options[key]))
    mode = str(options.get("execution_mode") or "").lower()
    if mode in ("sequential", "parallel"):
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
    level = options.get("graph_optimization_level")
    if level is not None:
        so.graph_optimization_level = ort.GraphOptimizationLevel(int(level))
    for k, v in (options.get("extra_session_config") or {}).items():
        so.add_session_config_entry(str(k), str(v))
    return so


def resolve_providers(requested: Any) -> list[Any]:
    """The providers to open a session with: the requested ones that this onnxruntime
    has (CPU appended last), or every available one with CPU last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if isinstance(requested, str):
        requested = [requested]
    if requested:
        entries = [tuple(p) if isinstance(p, list) else p for p in requested]
        usable = [p for p in entries if (p[0] if isinstance(p, tuple) else p) in available]
    else:
        usable = [p for p in available if p not in _NOT_DEFAULT]
    if not any((p[0] if isinstance(p, tuple) else p) == CPU for p in usable):
        usable.append(CPU)
    return usable
