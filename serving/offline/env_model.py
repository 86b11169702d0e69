"""``satchel.load_model(path, env_manager="venv")``: a model in its own environment,
predicting from this process.

The model's environment is built (or reused) by :class:`~satchel.envs.EnvCache`, a
model worker (:mod:`satchel.serving.server.model_worker`) loads the model there, and
the returned :class:`~satchel.Model` fits inputs to the signature here and sends them
over the same channel ``satchel serve --env-manager venv`` uses. Registered as the
``venv`` entry of the ``satchel.env_managers`` entry-point group.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Any

from satchel.errors import EnvironmentBuildError, SatchelError
from satchel.model import Model


def load_in_env(root: Path, options: dict[str, Any], *,
                wheelhouse: str | os.PathLike[str] | None = None) -> Model:
    """Build or reuse the environment of the model directory ``root`` and load the model
    in a worker there; ``options`` are :func:`satchel.load_model`'s.

    Raises:
        EnvironmentBuildError: the environment cannot be built, or an option cannot be
            sent to the worker (it must be JSON: strings, numbers, lists, dicts).
        SatchelError: the worker could not load the model (its reason quoted).
    """
    from satchel.envs import EnvCache, EnvSpec
    from satchel.serving.images.wheels import satchel_wheel
    from satchel.serving.server.env_models import remote_model
    from satchel.serving.server.env_workers import EnvWorker

    try:
        json.dumps(options)
    except (TypeError, ValueError):
        bad = sorted(k for k, v in options.items() if not _jsonable(v))
        raise EnvironmentBuildError(f"load option(s) {bad} cannot be sent to the model's "
                                    "environment (env_manager='venv' takes JSON values: "
                                    "strings, numbers, lists, dicts)") from None
    cache = EnvCache(satchel_wheel=satchel_wheel,
                     wheelhouse=Path(wheelhouse) if wheelhouse is not None else None)
    env = cache.ensure(EnvSpec.from_model(root))
    worker = EnvWorker(env.python, [{"name": "model", "path": str(root), "options": options}],
                       env.spec.key)
    try:
        info = worker.start()
    except SatchelError:
        worker.stop()
        raise
    model: Model = remote_model(worker, "model", root, info, owns_worker=True)
    # Stopped by close(), when the model is collected, or at exit, whichever comes first.
    weakref.finalize(model, worker.stop)
    return model


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
