"""``satchel registry serve``: run the registry app on uvicorn (one process)."""

from __future__ import annotations

import logging
from typing import Any

from satchel.serving.registry.app import create_app
from satchel.serving.registry.auth import TokenTable

log = logging.getLogger("satchel.serving.registry")


def serve(store: Any, *, host: str = "127.0.0.1", port: int = 5000,
          token_file: str | None = None, log_level: str = "info") -> None:
    """Serve ``store`` until interrupted; without a token file every caller is admin."""
    import uvicorn

    tokens = TokenTable.read(token_file) if token_file else TokenTable()
    if not tokens.enabled:
        log.warning("no --auth-token-file: every caller is 'anonymous' with the admin role")
    from satchel.serving.registry import app_governance, ui

    app = create_app(store, tokens, extra_routes=[*app_governance.routes(), *ui.routes()])
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=5)
