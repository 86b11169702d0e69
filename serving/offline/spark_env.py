"""``spark_udf(..., env_manager="venv")``: score in the model's own environment.

The driver builds (or reuses) the model's virtualenv once with
:class:`~satchel.envs.EnvCache`. Each Spark Python worker then starts one
:class:`~satchel.serving.server.env_workers.EnvWorker` in that environment (its
interpreter, the model loaded there) the first time it scores a batch, keeps it for
every later batch and task, and predicts through it; signature checks and coercion
stay in the Python worker, as for a served model. Executors use the environment at the
path the driver built it at when it exists there: true for ``local[*]``, for a
standalone cluster whose workers run on the driver's host, or when the cache directory
(``$SATCHEL_ENV_CACHE``) is a filesystem mounted at the same path on every host.

Elsewhere, with ``wheelhouse=`` (``satchel env prepare MODEL --wheelhouse DIR``), the
wheelhouse is shipped with ``addArchive`` and an executor host without the environment
builds it once from those wheels, offline, in its own cache (the cache's lock lets its
Python workers build it once). Without one the job fails with an error naming the
missing interpreter. See docs/spark.md.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from satchel.errors import EnvironmentBuildError, SatchelError

ENV_MANAGERS = ("local", "venv")

# (interpreter, model directory, options) -> (worker, remote model), per Python worker
_WORKERS: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def prepare(root: Path, env_manager: str,
            wheelhouse: str | os.PathLike[str] | None = None,
            cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """Driver side: the interpreter of the model's environment (built when missing), or
    None for ``env_manager="local"``.

    Raises:
        EnvironmentBuildError: an unknown ``env_manager``, or the build failed.
        PythonMismatchError: the model wants another Python minor version.
    """
    if env_manager not in ENV_MANAGERS:
        raise EnvironmentBuildError(f"env_manager {env_manager!r} is not supported; use one "
                                    f"of {', '.join(ENV_MANAGERS)}")
    if env_manager == "local":
        if wheelhouse is not None:
            raise EnvironmentBuildError("wheelhouse is only used with env_manager='venv'")
        return None
    from satchel.envs import EnvCache, EnvSpec
    from satchel.serving.images.wheels import satchel_wheel

    cache = EnvCache(Path(cache_dir) if cache_dir is not None else None,
                     satchel_wheel=satchel_wheel,
                     wheelhouse=Path(wheelhouse) if wheelhouse is not None else None)
    env = cache.ensure(EnvSpec.from_model(root))
    return str(env.python.absolute())


def ship_wheelhouse(spark: Any, wheelhouse: str | os.PathLike[str]) -> str:
    """Driver side: the wheelhouse as an archive every executor receives
    (``SparkContext.addArchive``), so an executor host without the environment builds it
    there, offline, from these wheels; returns the archive's name.

    Raises:
        EnvironmentBuildError: the wheelhouse holds no wheels.
    """
    import hashlib
    import zipfile

    from satchel.serving.offline.spark import _archive_dir

    house = Path(wheelhouse).resolve()
    wheels = sorted(p for p in house.glob("*.whl") if p.is_file())
    if not wheels:
        raise EnvironmentBuildError(f"wheelhouse {house} holds no wheels (prepare one with "
                                    "`satchel env prepare MODEL --wheelhouse DIR`)")
    h = hashlib.sha256()
    for p in wheels:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    name = f"satchel-wheels-{h.hexdigest()[:24]}.zip"
    sc = spark.sparkContext
    key = f"{sc.applicationId}:{name}"
    with _LOCK:
        if key in _SHIPPED:
            return name
        archive = _archive_dir() / name
        if not archive.exists():
            tmp = archive.with_suffix(".tmp")
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # wheels are zips
                for p in wheels:
                    z.write(p, p.name)
            os.replace(tmp, archive)
        sc.addArchive(str(archive))
        _SHIPPED.add(key)
    return name


_SHIPPED: set[str] = set()


def remote_model(python: str, model_dir: str, load_options: dict[str, Any],
                 wheels: str | None = None) -> Any:
    """Executor side: a Model whose predictions run in a worker of the environment
    ``python``, started once per Python worker process and reused. When this host lacks
    that interpreter and the driver shipped a wheelhouse (``wheels``, the archive's
    name), the environment is built here from it, offline, in this host's cache.

    Raises:
        EnvironmentBuildError: the environment's interpreter is not on this host and no
            wheelhouse was shipped, or building it from the wheelhouse failed.
        SatchelError: the worker could not load the model (its reason quoted).
    """
    import json

    key = (python, model_dir, json.dumps(load_options, sort_keys=True, default=str))
    found = _WORKERS.get(key)
    if found is not None:
        return found[1]
    with _LOCK:
        found = _WORKERS.get(key)
        if found is not None:
            return found[1]
        here = python if Path(python).exists() else _build_here(python, model_dir, wheels)
        from satchel.serving.server.env_models import remote_model as _remote
        from satchel.serving.server.env_workers import EnvWorker

        worker = EnvWorker(Path(here), [{"name": "model", "path": model_dir,
                                         "options": load_options}],
                           Path(here).parent.parent.name)
        try:
            info = worker.start()
        except SatchelError:
            worker.stop()
            raise
        # The worker also dies with this process (it watches its parent); this stops it
        # (and removes its socket directory) when the Python worker exits normally.
        atexit.register(worker.stop)
        model = _remote(worker, "model", Path(model_dir), info)
        _WORKERS[key] = (worker, model)
        return model


def _build_here(python: str, model_dir: str, wheels: str | None) -> str:
    """The interpreter of the model's environment built on this host from the shipped
    wheelhouse (the cache's lock makes concurrent Python workers build it once)."""
    if wheels is None:
        raise EnvironmentBuildError(
            f"the model's environment interpreter {python} (built on the driver) does not "
            f"exist on this executor ({os.uname().nodename}); env_manager='venv' needs "
            "the environment cache at the same path on every host (a shared mount, or "
            "'satchel env prepare' run on each host with the same SATCHEL_ENV_CACHE), or "
            "a wheelhouse= to build it from on each host")
    from pyspark import SparkFiles

    from satchel.envs import EnvCache, EnvSpec
    from satchel.serving.images.wheels import satchel_wheel

    cache = EnvCache(satchel_wheel=satchel_wheel, wheelhouse=Path(SparkFiles.get(wheels)))
    return str(cache.ensure(EnvSpec.from_model(model_dir)).python.absolute())
