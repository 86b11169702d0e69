"""``satchel evaluate --spark MASTER``: Spark reads the table, each executor predicts and
folds its partition into the evaluation's mergeable tables
(``satchel.serving.offline.spark_evaluation``, the serving layer's Spark plumbing), and the
driver merges one small state per partition; every figure comes from the same
``Evaluation`` as the in-memory path."""

from __future__ import annotations

import argparse
import time
from typing import Any


def run(args: argparse.Namespace) -> Any:
    """The EvaluationResult of the run."""
    from satchel import datafiles
    from satchel.evaluate import bootstrap, slices
    from satchel.evaluate.collect import Predictor
    from satchel.evaluate.engine import model_info, result_of
    from satchel.evaluate.stream import Evaluation
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
    empty = Evaluation(target=args.target, task_type=args.task,
                       estimator_type=predictor.estimator_type, classes=predictor.classes,
                       base_classes=base_predictor.classes if base_predictor else None,
                       baseline=base is not None, slice_specs=specs, seed=args.seed)
    ev = spark_evaluation.fold_on_spark(
        args.spark, str(args.data), datafiles.format_of(args.data), args.target,
        [n for n, _ in specs], path, base_path, empty)
    return result_of(ev, bootstrap.plan(resamples=args.resamples, seed=args.seed),
                     model_info(model, str(args.model)),
                     model_info(base, str(args.baseline)) if base is not None else None,
                     str(args.data).rsplit("/", 1)[-1], args.dataset_name, start)
