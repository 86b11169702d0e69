"""``satchel registry serve``: run the registry app on uvicorn, in one process or in
``workers`` processes forked from it (the scoring server's pre-fork supervisor)."""

from __future__ import annotations

import logging
from typing import Any

from satchel.serving.registry.app import create_app
from satchel.serving.registry.auth import TokenTable

log = logging.getLogger("satchel.serving.registry")


def http_protocol() -> str:
    """uvicorn's HTTP implementation: httptools (a C parser, installed with
    ``satchel[registry]``) when importable, else h11 (pure Python, about twice the CPU
    per small request)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def serve(store: Any, *, host: str = "127.0.0.1", port: int = 5000,
          token_file: str | None = None, log_level: str = "info", workers: int = 1) -> int:
    """Serve ``store`` until interrupted; without a token file every caller is admin.

    With ``workers > 1`` the app (store, token table) is built once here, the database
    connections are closed, and the supervisor forks the workers; each opens its own
    connections on first use, and every worker enforces the same tokens and roles.
    Returns the supervisor's exit status (0 after a clean stop).
    """
    import uvicorn

    tokens = TokenTable.read(token_file) if token_file else TokenTable()
    if not tokens.enabled:
        log.warning("no --auth-token-file: every caller is 'anonymous' with the admin role")
    from satchel.serving.registry import app_governance, ui

    app = create_app(store, tokens, extra_routes=[*app_governance.routes(), *ui.routes()])
    common: dict[str, Any] = {"log_level": log_level, "access_log": False,
                              "http": http_protocol()}
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=5, **common)
        return 0
    from satchel.serving.server.workers import WorkerOptions, run_uvicorn_workers

    # No connection (pooled, or a probe's) may cross the fork: a SQLite handle or a
    # PostgreSQL socket used by two processes corrupts both sides' view of it.
    store.dispose()
    return run_uvicorn_workers(app, host=host, port=port,
                               options=WorkerOptions(workers, drain_timeout=5.0), **common)
