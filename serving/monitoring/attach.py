"""Wire drift monitoring and payload logging onto a data plane: observers, the metrics
collector, and start/stop with the server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from satchel.serving.monitoring.exposition import render
from satchel.serving.monitoring.monitor import Monitor
from satchel.serving.monitoring.options import MonitorOptions, PayloadLogOptions
from satchel.serving.monitoring.payloads import PayloadLogger

log = logging.getLogger("satchel.serving")


@dataclass
class Monitoring:
    """What :func:`attach` set up (either part may be off)."""

    monitor: Monitor | None
    payloads: PayloadLogger | None

    def start(self) -> None:
        if self.monitor is not None:
            self.monitor.start()
        if self.payloads is not None:
            self.payloads.start()

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        if self.payloads is not None:
            self.payloads.stop()


def attach(plane: Any, monitor: MonitorOptions | None,
           payloads: PayloadLogOptions | None) -> Monitoring:
    """Observe ``plane``'s scored requests for drift and (opt-in) payload logs.

    Raises:
        PayloadLogError: the payload log directory is not writable (at start, not later).
    """
    repository = plane.repository

    def served_model(name: str) -> Any:
        served = repository.find(name)
        return served.model if served is not None else None

    def profile_of(name: str) -> Any:
        from satchel.errors import SatchelError
        from satchel.monitoring import Profile

        model = served_model(name)
        if model is None:
            return None
        try:
            return Profile.read(model.path)
        except (SatchelError, OSError) as exc:
            log.warning("model %s: reference profile unusable, monitoring raw figures "
                        "only: %s", name, exc)
            return None

    def identity_of(name: str) -> str | None:
        model = served_model(name)
        return None if model is None else str(model.manifest.model_uuid or model.path)

    mon = None
    if monitor is not None and monitor.enabled:
        mon = Monitor(profile_of, monitor, directory=plane.options.metrics_dir,
                      identity_of=identity_of)
        plane.observe(mon.observe)
        plane.metrics.add_collector(lambda: render(
            mon, [s.name for s in repository if s.ready]))
    logger = None
    if payloads is not None:
        logger = PayloadLogger(payloads)
        plane.observe(logger.observe)
        # Counted in the logger (its writer thread), summed over workers like the
        # request counters.
        plane.metrics.counter_function("satchel_payload_log_rows_total", logger.counts)
    return Monitoring(mon, logger)

