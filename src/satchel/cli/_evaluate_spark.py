"""``satchel evaluate --spark MASTER``: Spark reads the table, each executor predicts and
folds its partition into the evaluation's mergeable tables
(``satchel.serving.offline.spark_evaluation``, the serving layer's Spark plumbing), and the
driver merges one small state per partition; every figure comes from the same
``Evaluation`` as the in-memory path."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any


def run(args: argparse.Namespace, venv: bool = False) -> Any:
    """The EvaluationResult of the run; ``venv``: each model predicts in its own
    environment, here (its classes, kind and info come from a worker) and on the
    executors (``spark_udf(env_manager="venv")``'s path)."""
    with contextlib.ExitStack() as stack:
        return _run(args, venv, stack)


def _run(args: argparse.Namespace, venv: bool, stack: contextlib.ExitStack) -> Any:
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
    def load(path: Any) -> Any:
        if not venv:
            return load_model(path)
        return stack.enter_context(load_model(path, env_manager="venv",
                                              wheelhouse=args.wheelhouse))

    path, _ = model_dir(args.model)
    model = load(path)
    predictor = Predictor(model)
    base = base_predictor = None
    base_path = None
    if args.baseline:
        base_path, _ = model_dir(args.baseline)
        base = load(base_path)
        base_predictor = Predictor(base)
    empty = Evaluation(target=args.target, task_type=args.task,
                       estimator_type=predictor.estimator_type, classes=predictor.classes,
                       base_classes=base_predictor.classes if base_predictor else None,
                       baseline=base is not None, slice_specs=specs, seed=args.seed)
    ev = spark_evaluation.fold_on_spark(
        args.spark, str(args.data), datafiles.format_of(args.data), args.target,
        [n for n, _ in specs], path, base_path, empty,
        env_manager="venv" if venv else "local", wheelhouse=args.wheelhouse if venv else None)
    return result_of(ev, bootstrap.plan(resamples=args.resamples, seed=args.seed),
                     model_info(model, str(args.model)),
                     model_info(base, str(args.baseline)) if base is not None else None,
                     str(args.data).rsplit("/", 1)[-1], args.dataset_name, start)
