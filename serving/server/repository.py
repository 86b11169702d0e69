"""The models a server serves: a repository of named models that can be loaded,
unloaded and swapped while requests run.

A request looks its model up once and keeps that :class:`ServedModel` to the end, so a
model swapped or unloaded meanwhile finishes the requests it already has; new requests
get the new one. Loading happens before the swap: a directory that fails to load (or to
verify) leaves the old model serving.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satchel.errors import (
    ModelNotFoundError,
    ModelNotReadyError,
    SatchelError,
)

if TYPE_CHECKING:
    # satchel.model (numpy) is imported on first load: `satchel serve --env-manager venv`
    # starts its model workers before anything in this process needs it.
    from satchel.model import Model

log = logging.getLogger("satchel.serving")

LOADING, READY, FAILED = "loading", "ready", "failed"


@dataclass(eq=False)
class ServedModel:
    """One model in the registry, with its load state and measured predict cost.

    Attributes:
        name: the name it is served under (``/v2/models/{name}``).
        version: its version, or None (then no ``/versions/{v}`` path matches).
        model: the loaded model (None until ``state == "ready"``).
        path: the directory it is loaded from, when loaded by the registry.
        state: ``"loading"``, ``"ready"`` or ``"failed"``.
        error: why loading failed.
        predict_seconds: moving average of ``predict``'s wall time less what the
            process's other threads ran meanwhile (None before the first).
        predict_cpu_seconds: moving average of the CPU time the calling thread spent in
            it (the model's own threads, if it runs any, are not counted: its wall time
            bounds how long it holds the event loop).
        load_seconds: how long loading took (None when loaded elsewhere).
        memory_bytes: how much the process's resident memory grew while it loaded (None
            when loaded elsewhere or not measurable); libraries the model is the first to
            import count in it.
    """

    name: str
    version: str | None = None
    model: Model | None = None
    path: str | None = None
    state: str = LOADING
    error: str | None = None
    predict_seconds: float | None = None
    predict_cpu_seconds: float | None = None
    calls: int = 0
    load_seconds: float | None = None
    memory_bytes: int | None = None
    load_options: dict[str, Any] = field(default_factory=dict)
    # per-model values a protocol computes once (e.g. its metadata document)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ready(self) -> bool:
        return self.state == READY

    def require(self) -> Model:
        """The loaded model, or ModelNotReadyError naming the state."""
        if self.model is None or self.state != READY:
            why = f"failed to load: {self.error}" if self.state == FAILED else "is still loading"
            raise ModelNotReadyError(f"model '{self.name}' {why}")
        return self.model

    def note_predict(self, seconds: float, cpu_seconds: float | None) -> None:
        """Count one measured predict call: its wall time and its CPU time (None: not
        measured)."""
        # Exponential moving averages: cheap, and they follow a model that slows down.
        # Wall time alone misleads on a busy machine (time spent preempted); CPU time
        # alone misses a model that waits (on I/O, on a lock): executors look at both.
        wall, cpu = self.predict_seconds, self.predict_cpu_seconds
        self.predict_seconds = seconds if wall is None else 0.9 * wall + 0.1 * seconds
        if cpu_seconds is not None:
            self.predict_cpu_seconds = (cpu_seconds if cpu is None
                                        else 0.8 * cpu + 0.2 * cpu_seconds)


class ModelRepository:
    """The models a server serves, by name; the first one added is the default.

    ``/invocations`` scores the default model; the V2 routes pick one by name. With a
    ``root`` directory (``satchel serve --model-repository``), every folder in it is a
    model named after the folder, and :meth:`load` finds new ones there.

    Args:
        root: the model repository directory, or None.
        load_options: passed to :func:`satchel.load_model` for models found in ``root``.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 **load_options: Any) -> None:
        self._models: dict[str, ServedModel] = {}
        self._default: str | None = None
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every change to the set of models or their state
        self.root = Path(root) if root is not None else None
        self._root_options = dict(load_options)
        if self.root is not None:
            for name in self.folder_names():
                self.add_path(name, self.root / name, **load_options)

    def add(self, name: str, model: Model, *, version: str | None = None,
            load_seconds: float | None = None) -> ServedModel:
        """Serve an already loaded model under ``name``."""
        served = ServedModel(name, version, model, str(model.path), READY,
                             load_seconds=load_seconds)
        self._put(served)
        return served

    def add_path(self, name: str, path: str | os.PathLike[str], *, version: str | None = None,
                 **load_options: Any) -> ServedModel:
        """Register a model directory to load later with :meth:`load_pending`."""
        served = ServedModel(name, version, None, str(path), LOADING,
                             load_options=dict(load_options))
        self._put(served)
        return served

    def _put(self, served: ServedModel) -> None:
        with self._lock:
            if served.name in self._models:
                raise ValueError(f"a model named '{served.name}' is already served")
            self._models[served.name] = served
            if self._default is None:
                self._default = served.name
            self.generation += 1

    def load_pending(self, *, raise_errors: bool = True) -> None:
        """Load every model still in the ``loading`` state, then freeze the GC heap.

        With ``raise_errors=False`` a failure marks the model ``failed`` (its readiness
        then answers why) instead of raising.
        """
        for served in list(self._models.values()):
            if served.state != LOADING or served.path is None:
                continue
            start, rss = time.perf_counter(), resident_bytes()
            try:
                from satchel.model import load_model

                served.model = load_model(served.path, **served.load_options)
            except SatchelError as exc:
                served.state, served.error = FAILED, str(exc)
                if raise_errors:
                    raise  # the caller reports it (the CLI in one line)
                log.error("model '%s' failed to load: %s", served.name, exc)
                continue
            served.load_seconds = time.perf_counter() - start
            served.memory_bytes = _growth(rss)
            served.state = READY
            self.generation += 1
        freeze_heap()

    # --- load, unload, swap ------------------------------------------------------------------

    def folder_names(self) -> list[str]:
        """The model folders of ``root`` (sorted; hidden folders skipped), or []."""
        if self.root is None:
            return []
        try:
            entries = sorted(self.root.iterdir())
        except OSError as exc:
            raise ModelNotFoundError(f"the model repository {str(self.root)[:200]} cannot be "
                                     f"read: {exc.strerror}", name="") from None
        return [p.name for p in entries if p.is_dir() and not p.name.startswith(".")]

    def path_of(self, name: str) -> str:
        """The directory ``name`` loads from: its current path, else ``root/name``.

        Raises:
            ModelNotFoundError: not served and no such folder in the repository.
        """
        served = self._models.get(name)
        if served is not None and served.path is not None:
            return served.path
        if self.root is not None and _plain_name(name) and (self.root / name).is_dir():
            return str(self.root / name)
        where = f" or in the repository {self.root}" if self.root is not None else ""
        raise ModelNotFoundError(f"model '{name[:100]}' is not served here{where}",
                                 name=name)

    def load(self, name: str, path: str | os.PathLike[str] | None = None, *,
             version: str | None = None, check: Callable[[Model], None] | None = None,
             **load_options: Any) -> ServedModel:
        """Load (or reload) ``name`` from ``path`` (default: :meth:`path_of`) and swap it in.

        Blocking: run it off the event loop. Requests that already hold the old model
        finish on it; later ones get the new one.

        ``version`` replaces the version reported for ``name``; ``check(model)`` runs on
        the new model before the swap (e.g. predict its input example) and may raise to
        keep the old one.

        Raises:
            ModelNotFoundError: no path given and none known for ``name``.
            SatchelError: the directory does not load or verify, or ``check`` raised (the
                old model stays).
        """
        source = str(path) if path is not None else self.path_of(name)
        old = self._models.get(name)
        options = dict(load_options or (old.load_options if old is not None
                                        else self._root_options))
        start, rss = time.perf_counter(), resident_bytes()
        from satchel.model import load_model

        model = load_model(source, **options)
        if check is not None:
            check(model)
        if version is None and old is not None:
            version = old.version
        served = ServedModel(name, version, model, source,
                             READY, load_seconds=time.perf_counter() - start,
                             memory_bytes=_growth(rss), load_options=options)
        with self._lock:
            self._models[name] = served
            if self._default is None:
                self._default = name
            self.generation += 1
        return served

    def unload(self, name: str) -> ServedModel:
        """Stop serving ``name``; requests that already hold it finish on it.

        Raises:
            ModelNotFoundError: ``name`` is not served.
        """
        with self._lock:
            served = self._models.pop(name, None)
            if served is None:
                raise ModelNotFoundError(f"model '{name[:100]}' is not served here",
                                         name=name)
            if self._default == name:
                self._default = next(iter(self._models), None)
            self.generation += 1
        return served

    def set_default(self, name: str) -> None:
        """Make ``name`` the model ``/invocations`` scores.

        Raises:
            ModelNotFoundError: ``name`` is not served.
        """
        self.get(name)
        self._default = name

    def find(self, name: str) -> ServedModel | None:
        """The model served as ``name``, or None."""
        return self._models.get(name)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model served as ``name`` (and ``version``, when given).

        Raises:
            ModelNotFoundError: no such model or version.
        """
        served = self._models.get(name)
        if served is None:
            raise ModelNotFoundError(f"model '{name[:100]}' is not served here; served: "
                                     f"{sorted(self._models)[:20]}", name=name)
        if version is not None and version != served.version:
            have = f"version '{served.version}'" if served.version else "no version"
            raise ModelNotFoundError(f"model '{name[:100]}' has no version '{version[:40]}' "
                                     f"(it has {have})", name=name, version=version)
        return served

    @property
    def default(self) -> ServedModel:
        """The model ``/invocations`` scores."""
        if self._default is None:
            raise ModelNotFoundError("no model is served", name="")
        return self._models[self._default]

    @property
    def ready(self) -> bool:
        """True when every model is loaded."""
        return bool(self._models) and all(m.ready for m in self._models.values())

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)


def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _growth(before: int | None) -> int | None:
    after = resident_bytes()
    return None if before is None or after is None else max(after - before, 0)


# The young generation's collection threshold a server runs with (CPython's default is
# 700 net container allocations). Requests in flight hold a few thousand young objects
# that each collection walks (~80 us); a V2 request of 20 JSON tensors allocates ~60
# containers, so with 8 batched requests in flight the default collected every ~9
# requests, ~10 us of each one's CPU (a 1-row /invocations request: ~4 us). Ten times the
# threshold makes collections ten times rarer at about the same cost each; garbage in
# cycles waits at most that many more allocations.
GEN0_THRESHOLD = 7000


def freeze_heap() -> None:
    """Move everything allocated so far (the model) out of the GC's reach, and collect
    the young generation less often (:data:`GEN0_THRESHOLD`; a threshold set lower than
    that by the embedding process, other than 0 which turns collection off, is raised).

    A loaded model is a large, long-lived heap; without this every full collection walks
    it during requests, which is what makes tail latencies spike.
    """
    gc.collect()
    gc.freeze()
    first, *older = gc.get_threshold()
    if 0 < first < GEN0_THRESHOLD:
        gc.set_threshold(GEN0_THRESHOLD, *older)


def _plain_name(name: str) -> bool:
    # a folder name, never a path: no separators, no "..", not hidden
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def default_name(path: str | os.PathLike[str]) -> str:
    """The name a model directory is served under when none is given: its base name."""
    return Path(path).resolve().name or "model"
