"""A model worker: loads models inside their own environment and predicts for the front
server over a local channel.

Started by :mod:`satchel.serving.server.env_workers` as
``ENV/bin/python -m satchel.serving.server.model_worker SOCKET`` with the models to load
as JSON on stdin and the channel's key (hex) in ``SATCHEL_WORKER_KEY``. It prints one
JSON line (what it loaded, or why it could not) and then answers requests on the unix
socket, one thread per connection. Messages are framed by
:mod:`satchel.serving.server.channel` (pickle protocol 5, arrays as out-of-band
buffers, never JSON). A connection must first send the key: only the front server that
started the worker (and the HTTP workers it forked) can talk to it.

The front server fitted every input to the signature before sending it, with the same
satchel, so the worker predicts on it as it is (:meth:`satchel.Model.predict_prepared`):
the coercion policy runs once per request, in the front.
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


def native_info(model: Any) -> dict[str, Any]:
    """What crosses the channel of a model's native object: its type, classes, kind and
    whether it has ``predict_proba`` (:mod:`satchel.evaluate` asks for these)."""
    native = model.unwrap()
    info: dict[str, Any] = {"type": type(native).__name__}
    classes = getattr(native, "classes_", None)
    if classes is not None:
        import numpy as np

        info["classes"] = np.asarray(classes).tolist()
    info["predict_proba"] = callable(getattr(native, "predict_proba", None))
    kind = getattr(native, "_estimator_type", None)
    tags = getattr(native, "__sklearn_tags__", None)
    if callable(tags):
        try:
            kind = getattr(tags(), "estimator_type", kind)
        except Exception:  # noqa: BLE001 - third-party tag implementations
            pass
    info["estimator_type"] = kind if kind in ("classifier", "regressor") else None
    return info


def answer(models: dict[str, Any], op: str, name: str, data: Any, params: Any) -> Any:
    """The result of one request (raises what the model raised)."""
    model = models[name]
    if op == "predict":
        return model.predict_prepared(data, params)
    if op == "native":
        return native_info(model)
    if op == "predict_proba":
        import numpy as np

        return np.asarray(model.unwrap().predict_proba(data))
    raise ValueError(f"unknown operation {op!r}")


def serve_connection(sock: Any, models: dict[str, Any], key: bytes) -> None:
    """Answer one connection's requests until it closes: ``(op, name, packed input,
    params)`` in, ``("ok", the result as channel.to_wire sends it)`` or ``("error",
    class name, message, model error class)`` out."""
    from satchel.errors import PredictionError, SatchelError
    from satchel.serving.server import channel

    with sock:
        if not channel.accept_key(sock, key):
            return  # not the front server: no reply, no hint
        while True:
            try:
                op, name, packed, params = channel.recv(sock)
            except (EOFError, OSError):
                return
            if name not in models:
                channel.send(sock, ("error", "PredictionError",
                                    f"no model {name!r} in this worker", None))
                continue
            try:
                reply: tuple[Any, ...] = ("ok", channel.to_wire(answer(
                    models, op, name, channel.unpack_input(packed), params)))
            except SatchelError as exc:
                error_class = exc.error_class if isinstance(exc, PredictionError) else None
                reply = ("error", type(exc).__name__, str(exc), error_class)
            except Exception as exc:  # noqa: BLE001 - the model's own failure goes back as one
                reply = ("error", "PredictionError",
                         f"the model raised {type(exc).__name__}: {exc}", type(exc).__name__)
            try:
                channel.send(sock, reply)
            except OSError:
                return
            except Exception as exc:  # noqa: BLE001 - an output pickle cannot carry
                channel.send(sock, ("error", "PredictionError",
                                    f"the model's output cannot be sent back: {exc}",
                                    type(exc).__name__))


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
    import socket

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m satchel.serving.server.model_worker SOCKET", file=sys.stderr)
        return 2
    _die_with_parent(int(os.environ.pop("SATCHEL_WORKER_PARENT", os.getppid())))
    key = bytes.fromhex(os.environ.pop(KEY_VAR, ""))
    specs = json.loads(sys.stdin.read())
    import gc

    # Loading is mostly imports (the model's library: scikit-learn alone is ~1 s of a
    # warm start), which allocate many objects that live for good: cyclic collections
    # meanwhile only walk them (~6% of the load measured). Collected once when ready,
    # then frozen out of later collections, as the in-process server does after a load.
    gc.disable()
    try:
        models = _load(specs)
    except Exception as exc:  # noqa: BLE001 - reported to the front server, then exit
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}),
              flush=True)
        return 1
    finally:
        gc.enable()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # A restarted worker takes over its predecessor's path: clients reconnect to it.
    try:
        os.unlink(args[0])
    except FileNotFoundError:
        pass
    listener.bind(args[0])
    listener.listen(128)
    from satchel.serving.server.channel import VERSION

    print(json.dumps({"ready": describe(models), "pid": os.getpid(), "channel": VERSION}),
          flush=True)
    gc.collect()  # after "ready": not on the start's critical path
    gc.freeze()
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=serve_connection, args=(conn, models, key),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
