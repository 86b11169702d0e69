"""Run the scoring app under uvicorn: one process, or several workers.

uvicorn starts extra workers as fresh processes that import the app by name, so with
``workers > 1`` the model path travels in environment variables and each worker builds
its app with the factory :func:`app_from_env`.
"""

from __future__ import annotations

import os
from typing import Any

from satchel.model import Model

ENV_MODEL = "SATCHEL_MODEL"
ENV_NAME = "SATCHEL_MODEL_NAME"
ENV_DEBUG = "SATCHEL_DEBUG"
FACTORY = "satchel.serving.server:app_from_env"
_TRUE = ("1", "true", "yes", "on")


def app_from_env() -> Any:
    """The app for the model in ``$SATCHEL_MODEL`` (uvicorn factory for workers)."""
    from satchel.serving.rest import create_app

    path = os.environ.get(ENV_MODEL)
    if not path:
        raise RuntimeError(f"{ENV_MODEL} is not set: it names the model directory to serve")
    return create_app(path, name=os.environ.get(ENV_NAME) or None,
                      debug=os.environ.get(ENV_DEBUG, "").lower() in _TRUE)


def serve(model: Model | str, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          name: str | None = None, debug: bool = False, log_level: str = "info",
          access_log: bool = True) -> None:
    """Serve ``model`` (a loaded Model, or a directory) until interrupted."""
    import uvicorn

    common: dict[str, Any] = {"host": host, "port": port, "log_level": log_level,
                              "access_log": access_log, "lifespan": "on",
                              "timeout_graceful_shutdown": 30}
    if workers > 1:
        path = str(model.path) if isinstance(model, Model) else str(model)
        os.environ[ENV_MODEL] = path
        if name:
            os.environ[ENV_NAME] = name
        if debug:
            os.environ[ENV_DEBUG] = "1"
        uvicorn.run(FACTORY, factory=True, workers=workers, **common)
        return
    from satchel.serving.rest import create_app

    uvicorn.run(create_app(model, name=name, debug=debug), **common)
