"""The front server's models of a worker-backed environment, and the start of one worker
per environment.

``satchel serve --env-manager venv`` groups the models by :class:`~satchel.envs.EnvSpec`
key (models sharing an environment share a worker), starts an
:class:`~satchel.serving.server.env_workers.EnvWorker` in each environment, and puts a
:class:`~satchel.Model` in the repository whose predictor forwards to the worker. The
front process keeps everything else (HTTP and gRPC, decoding and the coercion policy,
batching, auth, limits, metrics, monitoring) and runs the coercion policy once; the
worker predicts on what it receives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel.errors import SatchelError
from satchel.serving.server.env_workers import EnvWorker

log = logging.getLogger("satchel.serving")


@dataclass
class RemoteFlavor:
    """What the front server knows of a flavor it does not load itself."""

    name: str
    row_independent: bool
    worker: EnvWorker | None = None
    model: str = ""

    def load(self, path: Any, config: Any) -> Any:
        """A stand-in for the native object: what the worker says of it, and its
        ``predict_proba`` run in the worker (what :mod:`satchel.evaluate` asks of it)."""
        if self.worker is None:
            raise SatchelError(f"the {self.name} model runs in its own environment's worker; "
                               "its native object is not available here")
        return RemoteNative(self.worker, self.model, self.worker.call("native", self.model))


class RemoteNative:
    """The native object of a model loaded in a worker, as far as it crosses a process:
    ``classes_``, ``_estimator_type`` and ``predict_proba`` (run in the worker)."""

    def __init__(self, worker: EnvWorker, name: str, info: dict[str, Any]) -> None:
        self._worker = worker
        self._name = name
        self.type_name = str(info.get("type", "?"))
        if info.get("classes") is not None:
            self.classes_ = info["classes"]
        if info.get("estimator_type") is not None:
            self._estimator_type = info["estimator_type"]
        if info.get("predict_proba"):
            self.predict_proba = self._predict_proba

    def _predict_proba(self, data: Any) -> Any:
        return self._worker.call("predict_proba", self._name, data)

    def __repr__(self) -> str:
        return f"<{self.type_name} in a model worker>"


class RemotePredictor:
    """A predictor that predicts in a model worker."""

    out_of_process = True  # servers wait for it off their event loop (Model.out_of_process)

    def __init__(self, worker: EnvWorker, name: str, row_independent: bool,
                 owns_worker: bool = False) -> None:
        self.worker = worker
        self.name = name
        self.row_independent = row_independent
        self._owns_worker = owns_worker

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.worker.call("predict", self.name, data, params)

    async def predict_async(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """:meth:`predict` awaited on the event loop (see :meth:`EnvWorker.call_async`)."""
        return await self.worker.call_async("predict", self.name, data, params)

    def close(self) -> None:
        """Stop the worker when this model alone uses it (``load_model(env_manager=)``)."""
        if self._owns_worker:
            self.worker.stop()


class Launch:
    """Workers started by :func:`launch_workers`, loading their models."""

    def __init__(self, groups: list[tuple[EnvWorker, list[tuple[str, Path]]]]) -> None:
        self.groups = groups

    @property
    def workers(self) -> list[EnvWorker]:
        return [w for w, _ in self.groups]

    def wait(self, while_loading: Callable[[], None] | None = None
             ) -> tuple[dict[str, Any], list[EnvWorker]]:
        """Run ``while_loading`` (the caller's own start-up), then wait for every worker;
        returns front-server models by name, and the workers.

        Raises:
            SatchelError: a worker could not load its models (all are stopped then).
        """
        models: dict[str, Any] = {}
        try:
            if while_loading is not None:
                while_loading()
            for worker, members in self.groups:
                info = worker.wait_started()
                for name, root in members:
                    models[name] = remote_model(worker, name, root, info)
        except BaseException:
            self.stop()
            raise
        return models, self.workers

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def launch_workers(specs: list[tuple[str, str]], cache: Any, load_options: dict[str, Any]
                   ) -> Launch:
    """Build or reuse each model's environment and start one worker per environment
    (models sharing an environment share it), without waiting for the models to load:
    they load in parallel with each other and with whatever the caller does next.

    Raises:
        SatchelError: an environment cannot be built (workers already started are
            stopped).
    """
    from satchel.envs import EnvSpec

    groups: dict[str, tuple[Any, list[tuple[str, Path]]]] = {}
    for name, path in specs:
        root = Path(path).expanduser().resolve()
        spec = EnvSpec.from_model(root)
        groups.setdefault(spec.key, (spec, []))[1].append((name, root))
    launch = Launch([])
    try:
        for key, (spec, members) in groups.items():
            env = cache.ensure(spec)
            log.info("environment %s for %s: %s", key, ", ".join(n for n, _ in members),
                     "built" if env.built else "cached")
            worker = EnvWorker(env.python, [{"name": n, "path": str(p),
                                             "options": load_options} for n, p in members],
                               key)
            worker.launch()
            launch.groups.append((worker, members))
    except BaseException:
        launch.stop()
        raise
    return launch


def start_workers(specs: list[tuple[str, str]], cache: Any, load_options: dict[str, Any],
                  while_loading: Callable[[], None] | None = None
                  ) -> tuple[dict[str, Any], list[EnvWorker]]:
    """:func:`launch_workers`, then :meth:`Launch.wait`: front-server models by name
    whose predictions run in their environments' workers, and the workers.

    Raises:
        SatchelError: an environment cannot be built, or a worker cannot load its models.
    """
    return launch_workers(specs, cache, load_options).wait(while_loading)


def remote_model(worker: EnvWorker, name: str, root: Path, info: dict[str, Any], *,
                 owns_worker: bool = False) -> Any:
    """A :class:`~satchel.Model` of the directory ``root`` whose predictions run in
    ``worker`` (which loaded it as ``name``); signature checks and coercion stay here.
    ``owns_worker``: the model's ``close()`` stops the worker (no other model uses it)."""
    from satchel.flavor import LoadConfig
    from satchel.manifest import Manifest
    from satchel.model import Model

    manifest = Manifest.read(root)
    described = info.get(name, {})
    flavor = RemoteFlavor(str(described.get("flavor", "remote")),
                          bool(described.get("row_independent", False)), worker, name)
    predictor = RemotePredictor(worker, name, flavor.row_independent, owns_worker)
    config = LoadConfig(section={}, pyfunc=dict(manifest.pyfunc or {}))
    return Model(root, manifest, flavor, config, predictor)  # type: ignore[arg-type]
