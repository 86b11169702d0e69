"""Serving follows the registry: re-resolve ``models:/`` sources and hot-swap new versions.

Every ``follow_interval`` seconds each followed model's URI (``models:/fraud@champion``,
``models:/fraud/Production``, ``models:/fraud/latest``) is resolved again. When it names
another version, that version is downloaded (verified by digest), loaded beside the old
one, checked by predicting its saved input example, and swapped in through the data
plane: requests already holding the old model finish on it, later ones get the new one,
so none fails and none sees a mix. A version that fails any step is logged and the old
one keeps serving; an unreachable registry is logged and the old one keeps serving too.
A version that failed is not retried until the URI names yet another version.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from satchel.errors import SatchelError
from satchel.model import Model

log = logging.getLogger("satchel.serving")


def check_example(model: Model) -> None:
    """Predict the model's saved input example (if any); raises when it cannot."""
    example = model.input_example()
    if example is not None:
        model.predict_detailed(example.data, example.params)


def served_version(model: Model | None) -> str | None:
    """The registry version a loaded model came from, as the V2 metadata reports it."""
    version = getattr(model, "registry_version", None)
    return None if version is None else str(version.version)


class Follower:
    """Polls the registry for a data plane's followed models (see module docs)."""

    def __init__(self, plane: Any, registry: Any = None) -> None:
        self.plane = plane
        self.sources: dict[str, str] = dict(plane.options.follow)
        self.interval = float(plane.options.follow_interval)
        self._registry = registry
        self._failed: dict[str, str] = {}  # model name -> digest that failed

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from satchel.registry import Registry

            self._registry = Registry()
        return self._registry

    def note_versions(self) -> None:
        """Export each followed model's served version as a gauge."""
        for name in self.sources:
            served = self.plane.repository.find(name)
            if served is not None and served.version and served.version.isdigit():
                self.plane.metrics.set_gauge("satchel_model_version", (("model", name),),
                                             float(served.version))

    async def check_once(self) -> list[str]:
        """Resolve every source once; swap what moved. Returns the names swapped."""
        swapped = []
        for name, uri in self.sources.items():
            try:
                version = await asyncio.to_thread(self.registry.resolve, uri)
            except SatchelError as exc:
                log.warning("model '%s': cannot resolve %s (%s); still serving the current "
                            "version", name, uri, exc)
                continue
            served = self.plane.repository.find(name)
            current = served.version if served is not None else None
            if current == str(version.version) or self._failed.get(name) == version.digest:
                continue
            try:
                path = await asyncio.to_thread(self.registry.local_path, version)
                await self.plane.load(name, str(path), version=str(version.version),
                                      check=check_example)
            except SatchelError as exc:
                self._failed[name] = version.digest
                log.error("model '%s': version %s from %s failed to load or verify (%s); "
                          "still serving version %s", name, version.version, uri, exc, current)
                continue
            self._failed.pop(name, None)
            log.info("model '%s' now serves version %s (was %s) from %s", name,
                     version.version, current, uri)
            swapped.append(name)
        self.note_versions()
        return swapped

    async def run(self) -> None:
        """Poll until cancelled."""
        self.note_versions()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except Exception:  # noqa: BLE001 - the poller must never stop serving
                log.exception("registry poll failed")


def start_following(plane: Any) -> asyncio.Task[None]:
    """Start the poller on the running loop; cancel the task to stop it."""
    follower = Follower(plane)
    plane.follower = follower
    return asyncio.get_running_loop().create_task(follower.run())
