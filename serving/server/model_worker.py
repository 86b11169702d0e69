"""A model worker: loads models inside their own environment and predicts for the front
server over a local channel.

Started by :mod:`satchel.serving.server.env_workers` as
``ENV/bin/python -m satchel.serving.server.model_worker SOCKET`` with the models to load
as JSON on stdin and the channel's key in ``SATCHEL_WORKER_KEY``. It prints one JSON
line (what it loaded, or why it could not) and then answers requests on the unix
socket. Requests and replies are pickled with protocol 5, so DataFrames and arrays
travel as their binary buffers, never as JSON; both ends are satchel, and the socket
is authenticated with the key (only the front server that started the worker can talk
to it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

KEY_VAR = "SATCHEL_WORKER_KEY"


def _load(specs: list[dict[str, Any]]) -> dict[str, Any]:
    from satchel.model import load_model

    return {s["name"]: load_model(s["path"], **s.get("options", {})) for s in specs}


def describe(models: dict[str, Any]) -> dict[str, Any]:
    return {name: {"flavor": m.flavor_name, "row_independent": m.row_independent}
            for name, m in models.items()}


def serve_connection(conn: Any, models: dict[str, Any]) -> None:
    """Answer one connection's requests until it closes: ``(name, data, params)`` in,
    ``("ok", output)`` or ``("error", class name, message, model error class)`` out."""
    from satchel.errors import PredictionError, SatchelError

    while True:
        try:
            name, data, params = conn.recv()
        except (EOFError, OSError):
            return
        try:
            model = models[name]
            # The front server fitted the input to the signature already; this pass is
            # the same lossless policy and leaves already-fitted data unchanged.
            reply: tuple[Any, ...] = ("ok", model.predict_detailed(data, params).output)
        except SatchelError as exc:
            error_class = exc.error_class if isinstance(exc, PredictionError) else None
            reply = ("error", type(exc).__name__, str(exc), error_class)
        except KeyError:
            reply = ("error", "ModelNotFoundError", f"no model {name!r} in this worker", None)
        except Exception as exc:  # noqa: BLE001 - the model's own failure goes back as one
            reply = ("error", "PredictionError",
                     f"the model raised {type(exc).__name__}: {exc}", type(exc).__name__)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an output pickle cannot carry
            conn.send(("error", "PredictionError",
                       f"the model's output cannot be sent back: {exc}", type(exc).__name__))


def _die_with_parent(parent: int) -> None:
    """Exit when the front server does, however it ends (SIGKILL included)."""
    import ctypes
    import signal

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above took effect
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    from multiprocessing.connection import Listener

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m satchel.serving.server.model_worker SOCKET", file=sys.stderr)
        return 2
    _die_with_parent(int(os.environ.pop("SATCHEL_WORKER_PARENT", os.getppid())))
    key = os.environ.pop(KEY_VAR, "").encode()
    specs = json.loads(sys.stdin.read())
    try:
        models = _load(specs)
    except Exception as exc:  # noqa: BLE001 - reported to the front server, then exit
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}),
              flush=True)
        return 1
    listener = Listener(args[0], family="AF_UNIX", authkey=key)
    print(json.dumps({"ready": describe(models), "pid": os.getpid()}), flush=True)
    while True:
        try:
            conn = listener.accept()
        except Exception:  # noqa: BLE001 - a client without the key: refuse it, keep serving
            continue
        threading.Thread(target=serve_connection, args=(conn, models), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
