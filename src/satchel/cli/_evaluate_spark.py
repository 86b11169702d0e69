"""``satchel evaluate --spark MASTER``: Spark reads the table and predicts on the
executors (``satchel.serving.offline.spark_evaluation``, the serving layer's Spark
plumbing), the driver receives targets, predictions, probabilities and slice values a
batch at a time and folds them into the same cells, and every figure comes from the same
``compute`` as the in-memory path."""

from __future__ import annotations

import argparse
import time
from typing import Any


def run(args: argparse.Namespace) -> Any:
    """The EvaluationResult of the run."""
    from satchel import datafiles
    from satchel.evaluate import slices
    from satchel.evaluate.collect import Collected, Predictor
    from satchel.evaluate.engine import compute, model_info
    from satchel.model import load_model
    from satchel.registry.api import model_dir
    from satchel.serving.offline import spark_evaluation

    start = time.monotonic()
    specs = [slices.parse_spec(s) for s in args.slice_by]
    path, _ = model_dir(args.model)
    model = load_model(path)
    predictor = Predictor(model)
    base = base_predictor = None
    base_path = None
    if args.baseline:
        base_path, _ = model_dir(args.baseline)
        base = load_model(base_path)
        base_predictor = Predictor(base)
    batches = spark_evaluation.batches_for_evaluation(
        args.spark, str(args.data), datafiles.format_of(args.data), args.target,
        [n for n, _ in specs], path, base_path, predictor.classes,
        base_predictor.classes if base_predictor is not None else None)
    chunks = (Collected(y=got["y"], pred=got["pred"], proba=got["proba"],
                        classes=predictor.classes, slices=got["slices"],
                        base_pred=got["base_pred"], base_proba=got["base_proba"],
                        base_classes=base_predictor.classes if base_predictor else None)
              for got in batches)
    return compute(chunks, target=args.target, task_type=args.task,
                   model=model_info(model, str(args.model)),
                   baseline=model_info(base, str(args.baseline)) if base is not None else None,
                   estimator_type=predictor.estimator_type, slice_specs=specs,
                   resamples=args.resamples, confidence=0.95, seed=args.seed,
                   source=str(args.data).rsplit("/", 1)[-1], dataset_name=args.dataset_name,
                   start=start, classes=predictor.classes,
                   base_classes=base_predictor.classes if base_predictor else None,
                   baseline_given=base is not None)
