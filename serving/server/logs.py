"""Log configuration for the server: uvicorn's plain text, or one JSON object per line.

``--log-format json`` sends every record (the server's own, uvicorn's, and the access
log written by :mod:`satchel.serving.server.middleware`) to stderr as JSON with ``ts``, ``level``,
``logger``, ``message``, ``pid`` and, for access lines, the request's fields.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

LOG_FORMATS = ("text", "json")
# attributes every LogRecord has; anything else came in through ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra`` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_config(log_format: str, level: str = "info", *, access_log: bool = True
               ) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for a format: None keeps uvicorn's text default."""
    if log_format == "text":
        return None
    if log_format != "json":
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {log_format!r}")
    lvl = level.upper() if level != "trace" else "DEBUG"
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": lvl, "propagate": False},
            "uvicorn.error": {"level": lvl},
            # satchel writes its own access lines (with the request id) in JSON mode
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "satchel": {"handlers": ["default"], "level": lvl, "propagate": False},
            "satchel.access": {"level": "INFO" if access_log else "CRITICAL"},
        },
    }
