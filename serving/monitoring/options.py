"""Options of drift monitoring and payload logging (no heavy imports: the CLI reads the
defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WINDOW = 3600.0


@dataclass(frozen=True)
class MonitorOptions:
    """How drift is measured while serving.

    Attributes:
        enabled: count requests into drift windows at all.
        window: seconds of traffic the figures cover (default one hour).
        buckets: slices the window is cut into (its resolution).
        max_pending: observations held for the background thread; more are skipped.
        interval: seconds between the background thread's passes (sooner once a
            quarter of ``max_pending`` is queued). Each pass has a fixed cost (~1 ms), so
            fewer, larger passes cost less per request.
        cpu_budget: the share of the process's CPU time counting may use while the
            event loop is busy (it may also use half the time the loop and a CPU of
            the machine are both idle); above it,
            requests are sampled (uniformly, so the distributions and drift figures stay
            unbiased).
    """

    enabled: bool = True
    window: float = DEFAULT_WINDOW
    buckets: int = 12
    max_pending: int = 4096
    interval: float = 1.0
    cpu_budget: float = 0.02

    def __post_init__(self) -> None:
        if not 0 < self.cpu_budget <= 1:
            raise ValueError("the monitor's cpu_budget must be in (0, 1]")
        if self.window <= 0:
            raise ValueError("the monitor window must be positive")
        if not 1 <= self.buckets <= 1440:
            raise ValueError("monitor buckets must be between 1 and 1440")
        if self.max_pending < 1:
            raise ValueError("max_pending must be at least 1")


@dataclass(frozen=True)
class PayloadLogOptions:
    """Opt-in logging of a sample of requests and predictions to Parquet files.

    Attributes:
        directory: where files go (one subdirectory per model).
        sample: the fraction of requests logged, in (0, 1].
        redact: input columns never written.
        rotate_seconds: start a new file after this long (default one hour).
        rotate_bytes: or once a file holds about this many bytes.
        max_pending: requests held for the writer; more are dropped and counted.
    """

    directory: str
    sample: float = 0.01
    redact: tuple[str, ...] = ()
    rotate_seconds: float = 3600.0
    rotate_bytes: int = 64 * 1024 * 1024
    max_pending: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.sample <= 1:
            raise ValueError(f"the payload log sample must be in (0, 1], not {self.sample}")
        if self.rotate_seconds <= 0 or self.rotate_bytes <= 0:
            raise ValueError("payload log rotation limits must be positive")
        if self.max_pending < 1:
            raise ValueError("max_pending must be at least 1")


def parse_duration(text: str) -> float:
    """Seconds from ``"3600"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``.

    Raises:
        ValueError: not a duration.
    """
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if m is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 3600, 90s, 15m, 1h)")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return value
