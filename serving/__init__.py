"""Serving targets over the generic ``Model``, grouped by purpose:

- ``server/``: the scoring server (data plane, model repository, HTTP transport,
  middleware, batching, metrics, worker processes, options);
- ``protocols/``: one codec per wire protocol (MLflow's, the Open Inference Protocol);
- ``offline/``: scoring files and tables (``satchel batch``, the Spark UDF);
- ``images/``: container images (Dockerfile rendering, wheels for the build context).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from satchel.serving.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # imported on first use: ``import satchel.serving.spark`` must not load starlette
    if name == "create_app":
        from satchel.serving.server.app import create_app

        return create_app
    raise AttributeError(f"module 'satchel.serving' has no attribute {name!r}")
