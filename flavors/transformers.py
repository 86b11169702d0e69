"""transformers flavor: a ``transformers.Pipeline`` in MLflow's layout.

Storage is the library's own ``save_pretrained`` (safetensors weights and JSON configs):
``model/`` holds the model, ``components/<name>/`` the tokenizer, feature extractor or
image processor. The section carries MLflow's keys (``task``, ``instance_type``,
``pipeline_model_type``, ``components``, ``torch_dtype``, ...) and ``loader_module:
mlflow.transformers``, so MLflow loads what satchel saves and the other way round.
Loading runs no code: weights are safetensors (or read by torch's ``weights_only``
loader), and ``trust_remote_code`` is never set, so a model whose config names custom
code is refused by transformers. Nothing is fetched from the Hugging Face Hub.

Prediction follows MLflow's pyfunc wrapper for the text tasks: the inference config
(pyfunc ``config`` in the manifest, MLflow's older ``components/inference_config.txt``,
then the ``model_config`` load option) is passed to the pipeline, with predict-time
params overriding it; then per task

- text-classification: a DataFrame of ``label`` and ``score``;
- text-generation, text2text-generation, summarization, translation: the generated
  strings (stripped; a single one still comes back as a one-item list);
- fill-mask: the top token string per input;
- token-classification: the entities of each input joined by commas;
- feature-extraction: the first input's embedding as an array (as MLflow does).
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from satchel import libs
from satchel.errors import FlavorLoadError, ModelFormatError, SignatureError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside
from satchel.schema import ColSpec, DataType, Schema, Signature, TensorSpec

MODEL_DIR = "model"
COMPONENTS_DIR = "components"
COMPONENT_NAMES = ("tokenizer", "feature_extractor", "image_processor")
LEGACY_CONFIG = "inference_config.txt"
GENERATION_KEYS = {
    "text-generation": "generated_text",
    "text2text-generation": "generated_text",
    "summarization": "summary_text",
    "translation": "translation_text",
}
TASKS = (
    "text-classification",
    "fill-mask",
    "token-classification",
    "feature-extraction",
    *GENERATION_KEYS,
)
# Tasks MLflow names by an alias.
_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def _transformers() -> Any:
    return libs.require("transformers", flavor="transformers")


def _is_transformers_type(obj: Any) -> bool:
    return any(c.__module__.split(".")[0] == "transformers" for c in type(obj).__mro__)


def _task(name: str) -> str:
    base = _ALIASES.get(name, name)
    return "translation" if base.startswith("translation") else base


class TransformersFlavor:
    """The ``transformers`` flavor (pipelines)."""

    name = "transformers"
    loader_module = "mlflow.transformers"
    row_independent = True  # per task on the predictor: feature-extraction is not
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ("device",)

    def can_save(self, obj: Any) -> bool:
        if "transformers" not in sys.modules or not _is_transformers_type(obj):
            return False
        import transformers

        return isinstance(obj, transformers.Pipeline)

    def save(
        self, obj: Any, path: Path, *, model_config: dict[str, Any] | None = None
    ) -> FlavorConfig:
        """Write ``model/`` and ``components/<name>/`` with ``save_pretrained``.

        ``model_config`` is the inference config passed to the pipeline at predict time
        (e.g. ``{"max_new_tokens": 20}``), written where MLflow reads it.
        """
        transformers = _transformers()
        if not isinstance(obj, transformers.Pipeline):
            raise TypeError(
                f"the transformers flavor saves a transformers.Pipeline, not {type(obj).__name__}"
            )
        if model_config is not None and not isinstance(model_config, dict):
            raise TypeError(f"model_config must be a dict, not {type(model_config).__name__}")
        task = str(obj.task)
        if _task(task) not in TASKS:
            raise ValueError(f"the transformers flavor serves the tasks {TASKS}, not {task!r}")
        model = obj.model
        model.save_pretrained(str(path / MODEL_DIR))
        section: dict[str, Any] = {
            "task": task,
            "instance_type": type(obj).__name__,
            "pipeline_model_type": type(model).__name__,
            "source_model_name": str(getattr(model, "name_or_path", "") or ""),
            "torch_dtype": str(getattr(model, "dtype", "")) or None,
            "transformers_version": transformers.__version__,
            "code": None,
            "model_binary": MODEL_DIR,
        }
        components = []
        for name in COMPONENT_NAMES:
            part = getattr(obj, name, None)
            if part is None:
                continue
            part.save_pretrained(str(path / COMPONENTS_DIR / name))
            section[f"{name}_type"] = type(part).__name__
            components.append(name)
        section["components"] = components
        # MLflow writes pyfunc's model_config under the key "config".
        pyfunc = {"config": dict(model_config)} if model_config else {}
        return FlavorConfig(section=section, pyfunc=pyfunc, signature=task_signature(task))

    def default_requirements(self) -> list[str]:
        return ["transformers", "torch", "safetensors"]

    def load(self, path: Path, config: LoadConfig) -> Any:
        transformers = _transformers()
        section = config.section
        libs.warn_if_newer(
            "transformers",
            section.get("transformers_version"),
            what=f"the transformers model {path.name}",
        )
        task = section.get("task")
        if not task:
            raise ModelFormatError(f"{path.name}: the transformers section names no task")
        if _task(str(task)) not in TASKS:
            raise FlavorLoadError(
                f"{path.name} is a {task!r} pipeline; satchel serves the tasks {TASKS}",
                flavor="transformers",
            )
        if section.get("peft_adaptor") or section.get("local_base_model_path"):
            raise FlavorLoadError(
                f"{path.name} is a PEFT adapter model, which satchel does not load",
                flavor="transformers",
            )
        rel = section.get("model_binary") or MODEL_DIR
        model_dir = inside(path, str(rel), what="transformers model directory", must_exist=False)
        if not model_dir.is_dir():
            raise ModelFormatError(
                f"{path.name} holds no {rel}/ directory (a model saved with "
                "save_pretrained=False refers to the Hugging Face Hub, which satchel never "
                "downloads from)",
                path=str(path),
            )
        kwargs: dict[str, Any] = {}
        dtype = _dtype(section.get("torch_dtype"))
        if dtype is not None:
            kwargs["dtype"] = dtype
        parts: dict[str, Any] = {}
        for name in section.get("components") or ():
            if name not in COMPONENT_NAMES:
                raise ModelFormatError(f"{path.name}: unknown pipeline component {name!r}")
            comp_dir = inside(path, f"{COMPONENTS_DIR}/{name}", what=f"the {name}")
            parts[name] = str(comp_dir)
        try:
            return transformers.pipeline(
                task=str(task),
                model=str(model_dir),
                device=_device(config),
                model_kwargs=kwargs,
                trust_remote_code=False,
                **parts,
            )
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            lines = str(exc).strip().splitlines()
            first = lines[0] if lines else type(exc).__name__
            raise ModelFormatError(
                f"{rel}/ is not a loadable transformers model: {first}", path=str(model_dir)
            ) from None

    def load_predictor(self, path: Path, config: LoadConfig) -> PipelinePredictor:
        inference = dict(config.pyfunc.get("config") or config.pyfunc.get("model_config") or {})
        legacy = path / COMPONENTS_DIR / LEGACY_CONFIG
        if legacy.is_file():
            try:
                inference = json.loads(legacy.read_text())
            except ValueError:
                raise ModelFormatError(
                    f"{COMPONENTS_DIR}/{LEGACY_CONFIG} is not JSON", path=str(legacy)
                ) from None
        inference.update(config.options.get("model_config") or {})
        return PipelinePredictor(self.load(path, config), inference)


def task_signature(task: str) -> Signature:
    """MLflow's default signature for a text task: one unnamed string column in, and
    per task the output (label and score, strings, or an embedding tensor)."""
    string = Schema([ColSpec(DataType.string)])
    t = _task(task)
    if t == "text-classification":
        outputs: Schema | None = Schema(
            [ColSpec(DataType.string, "label"), ColSpec(DataType.double, "score")]
        )
    elif t == "feature-extraction":
        outputs = Schema([TensorSpec("float64", (-1,))])
    else:
        outputs = string
    return Signature(string, outputs)


def _dtype(name: Any) -> Any:
    """``torch.float16`` from ``"torch.float16"``: looked up among torch's dtypes only."""
    if not name:
        return None
    import torch

    value = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ModelFormatError(f"torch_dtype {name!r} is not a torch dtype")
    return value


def _device(config: LoadConfig) -> Any:
    device = config.options.get("device")
    if device is not None:
        return device
    env = os.environ.get("MLFLOW_DEFAULT_PREDICTION_DEVICE")
    if env:
        return int(env) if env.lstrip("-").isdigit() else env
    import torch

    return 0 if torch.cuda.is_available() else "cpu"


# --- predictor ---------------------------------------------------------------------


class PipelinePredictor:
    """Calls the pipeline with its inference config, shaping inputs and outputs as MLflow."""

    def __init__(self, pipeline: Any, model_config: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.model_config = dict(model_config)
        self.task = _task(str(pipeline.task))
        # MLflow returns the first input's embedding only: rows are not independent.
        self.row_independent = self.task != "feature-extraction"

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Run the pipeline; see the module docstring for what each task returns."""
        options = {**self.model_config, **(params or {})}
        include_prompt = options.pop("include_prompt", True)
        del include_prompt  # only for instruction pipelines MLflow special-cases
        collapse = bool(options.pop("collapse_whitespace", False))
        inputs = self._inputs(data)
        task = self.task
        if type(inputs) is list and not inputs:
            # No rows, no answers (an empty Spark partition, a 0-row request): the pipeline
            # itself fails on an empty list with an IndexError from deep inside.
            if task == "text-classification":
                import pandas as pd

                return pd.DataFrame({"label": pd.Series([], dtype=object),
                                     "score": pd.Series([], dtype=np.float64)})
            return np.array([], dtype=np.float64 if task == "feature-extraction" else object)
        raw = self._run(inputs, options)
        if task == "text-classification":
            import pandas as pd

            return pd.DataFrame(raw if isinstance(raw, list) else [raw])
        if task == "feature-extraction":
            return raw if isinstance(raw, np.ndarray) else np.array(raw[0][0])
        if task in GENERATION_KEYS:
            key = GENERATION_KEYS[task]
            if task == "text-generation":
                out: Any = _generated(raw, key)
                if collapse:
                    out = (
                        [" ".join(s.split()) for s in out]
                        if isinstance(out, list)
                        else " ".join(out.split())
                    )
            else:
                out = _values(raw, key)
        elif task == "fill-mask":
            out = _first_of_each(raw, "token_str")
        else:  # token-classification
            out = _entities(raw)
        return _as_list(_strip(out, inputs, task))

    def predict_texts(self, texts: list[str], params: dict[str, Any] | None = None) -> Any:
        """:meth:`predict` on a one-column frame of ``texts``, without building it: what
        ``Model.predict`` calls with a list of texts (its frame would be this list again)."""
        return self.predict(texts, params)

    def _run(self, inputs: Any, options: dict[str, Any]) -> Any:
        """The pipeline's answer for ``inputs``, as a call with ``inputs`` gives it.

        A list of one text for a text classifier takes the pipeline's single-input path:
        a list goes through the pipeline's iterator (a torch DataLoader built per call),
        which at one row costs about as much as the model itself, and for this task the
        single-input answer is the list answer (one result per text; with ``top_k`` the
        single input's result is that one text's list, so it is wrapped once more).
        """
        if (
            self.task == "text-classification"
            and type(inputs) is list
            and len(inputs) == 1
            and type(inputs[0]) is str
        ):
            one = self.pipeline(inputs[0], **options)
            return [one] if "top_k" in options else one
        return self.pipeline(inputs, **options)

    def _inputs(self, data: Any) -> Any:
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(data, pd.DataFrame):
            # One column of strings is the list of inputs, whatever its name (MLflow gets
            # there through records keyed 0 or by the column's name).
            # (to_numpy: df.iloc[:, 0] builds a Series, tens of us at one row.)
            data = (
                data.to_numpy().ravel().tolist() if data.shape[1] == 1 else data.to_dict("records")
            )
        elif pd is not None and isinstance(data, pd.Series):
            data = data.tolist()
        elif isinstance(data, np.ndarray):
            data = data.tolist()
        if isinstance(data, (str, dict)):
            return _text_pairs(data) if self.task == "text-classification" else data
        if not isinstance(data, list) or not all(isinstance(x, (str, dict)) for x in data):
            raise SignatureError(
                "a transformers pipeline takes a string, a list of strings, records or a "
                f"one-column DataFrame, not {type(data).__name__}",
                given=type(data).__name__,
            )
        if data and all(isinstance(x, dict) for x in data):
            first_keys = list(data[0])
            if self.task == "text-classification" and first_keys != [0]:
                return [_text_pairs(x) for x in data]
            # A column of strings: each record's one value.
            return [next(iter(x.values())) for x in data]
        return data


def _text_pairs(payload: Any) -> Any:
    if isinstance(payload, str):
        try:
            # MLflow's serving JSON-encodes {"text", "text_pair"} dicts as strings.
            parsed = ast.literal_eval(payload)
        except (ValueError, SyntaxError):
            return payload
        return parsed if isinstance(parsed, dict) else payload
    extra = set(payload) - {"text", "text_pair"}
    if extra:
        raise SignatureError(
            "text-classification takes 'text' and 'text_pair' keys, given "
            f"{sorted(map(str, extra))}",
            expected="text, text_pair",
            given=str(sorted(map(str, extra))),
        )
    return payload


def _generated(raw: Any, key: str) -> Any:
    if all(isinstance(x, dict) for x in raw):
        return [x[key] for x in raw][0]
    return [x[key] for group in raw for x in group]


def _values(raw: Any, key: str) -> list[Any]:
    out: list[Any] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, dict):
            for k, v in item.items():
                if k == key:
                    out.append(v)
                elif isinstance(v, list) and all(isinstance(e, dict) for e in v):
                    out.extend(_values(v, key))
        elif isinstance(item, list):
            out.extend(_values(item, key))
    return out


def _first_of_each(raw: Any, key: str) -> list[Any]:
    if isinstance(raw[0], list):
        return [
            group[0][key] if isinstance(group[0], dict) else [g[0][key] for g in group]
            for group in raw
        ]
    return [raw[0][key]]


def _entities(raw: Any) -> Any:
    if not raw:
        return ""
    if isinstance(raw[0], list):
        return [_entities(group) for group in raw]
    keys = {"entity_group", "entity"} & set(raw[0])
    key = keys.pop()
    return ",".join(str(x[key]) for x in raw)


def _strip(out: Any, inputs: Any, task: str) -> Any:
    if task != "token-classification" and isinstance(inputs, str) and isinstance(out, list):
        out = out[0]
    if isinstance(out, str):
        return out.strip()
    if isinstance(out, list):
        if all(isinstance(s, str) for s in out):
            cleaned = [s.strip() for s in out]
            return cleaned if len(cleaned) > 1 else cleaned[0]
        return [_strip(x, inputs, task) for x in out]
    return out


def _as_list(out: Any) -> Any:
    return [out] if isinstance(out, str) else out


def save_model(pipeline: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a ``transformers.Pipeline``; keyword arguments as :func:`satchel.save_model`,
    plus ``model_config`` (the inference config passed to the pipeline)."""
    from satchel.save import save_model as _save

    return _save(pipeline, path, flavor="transformers", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the ``transformers.Pipeline`` of a saved model (``device=`` to place it)."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name != "transformers":
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not transformers")
    return model.unwrap()
