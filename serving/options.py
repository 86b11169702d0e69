"""Everything a server is configured with beyond its models, in one value.

``satchel serve`` fills it from its flags (each with a ``SATCHEL_*`` environment
fallback); :func:`satchel.serving.rest.create_app` takes it as ``options=``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from satchel.serving.batching import BatchOptions
from satchel.serving.limits import Limits

BATCHING_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class ServeOptions:
    """How the server batches, limits, counts and documents requests.

    Attributes:
        batching: ``"auto"`` batches models whose flavor (or PythonModel) declares rows
            independent; ``"on"`` batches every model (the operator vouches for it);
            ``"off"`` never batches.
        batch: batch size and delay limits.
        limits: body size, timeout, queue bound, bearer token, JSON access log.
        metrics_dir: where worker processes share their counts (None: one process).
        metrics_interval: seconds between a worker's metric snapshots.
        docs: serve ``/openapi.json`` and ``/docs``.
    """

    batching: str = "auto"
    batch: BatchOptions = field(default_factory=BatchOptions)
    limits: Limits = field(default_factory=Limits)
    metrics_dir: str | None = None
    metrics_interval: float = 1.0
    docs: bool = True

    def __post_init__(self) -> None:
        if self.batching not in BATCHING_MODES:
            raise ValueError(f"batching must be one of {BATCHING_MODES}, not {self.batching!r}")


_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_SCALE = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from ``"1048576"``, ``"100MiB"``, ``"10MB"``, ``"2g"`` (KiB/MiB/GiB are 1024-based,
    k/M/G and kB/MB/GB 1000-based).

    Raises:
        ValueError: not a size.
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 100MiB, 10MB)")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(m.group(1)) * _SCALE[unit]
