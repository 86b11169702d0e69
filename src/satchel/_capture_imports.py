"""``python -m satchel._capture_imports DIR``: load a model, predict on its input example,
and print the top-level modules the model's own code imported (JSON, last line).

An import counts when no other import is running and the first caller outside the
standard library is the model's code (its script, its code paths, classes it defined) or
satchel loading it (a flavor's lazy import, the unpickler resolving a class): what a
library imports for itself (xgboost trying scikit-learn) is that library's business,
not the model's requirement.
Run by :mod:`satchel.requirements` in another process (``--serve``: a warm one that forks
a child per job), never in the caller's.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import sysconfig
from typing import Any

_STDLIB = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_SITE = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
_SATCHEL = os.sep + "satchel" + os.sep


def _counts(frame: Any) -> bool:
    """True when the import at ``frame`` was asked for by the model or satchel."""
    while frame is not None:
        name = frame.f_code.co_filename
        path = os.path.realpath(name)
        if name.startswith("<frozen") or (
            path.startswith(_STDLIB) and not any(s in path for s in _SITE)
        ):
            frame = frame.f_back  # importlib, pickle ...: ask who called them
            continue
        if any(s in path for s in _SITE):
            return _SATCHEL in path
        return True  # model code, a model script, satchel from a source checkout
    return False


def capture(model_dir: str) -> list[str]:
    """Load ``model_dir``, predict on its input example, and return the top-level modules
    the model's own code imported on the way."""
    from satchel.model import load_model

    seen: set[str] = set()
    real = builtins.__import__
    depth = [0]

    def recording(name: str, globals: Any = None, locals: Any = None,
                  fromlist: Any = (), level: int = 0) -> Any:
        # Imports made while another import runs belong to that module, not the model.
        if depth[0] == 0 and level == 0 and _counts(sys._getframe(1)):
            seen.add(name.split(".")[0])
        depth[0] += 1
        try:
            return real(name, globals, locals, fromlist, level)
        finally:
            depth[0] -= 1

    builtins.__import__ = recording
    try:
        model = load_model(model_dir, verify=False)
        example = model.input_example()
        if example is not None:
            model.predict(example.data, example.params)
    finally:
        builtins.__import__ = real
    return sorted(seen)


def main(argv: list[str]) -> int:
    """Load, predict, print; a failure exits non-zero with its message on stderr."""
    if argv == ["--serve"]:
        return serve()
    print(json.dumps(capture(argv[0])))
    return 0


def serve() -> int:
    """Answer capture jobs read from stdin, one JSON line each, until stdin closes.

    The interpreter stays warm (satchel and pandas imported once), and each job runs in
    a child forked from it: a model's imports, ``sys.path`` and state never reach the
    next job, and a job costs a fork and the model's own load and predict instead of a
    new interpreter importing numpy and pandas (~0.5-1 s of CPU). A job is ``{"dir",
    "path", "cwd", "env"}`` (the caller's import path, directory and environment,
    applied in the child); the answer is ``{"modules": [...]}`` or ``{"error": "one
    line"}``. Preloading changes nothing that is recorded: the hook sees the model's
    import statements, whether or not the module is loaded already. Only these two are
    preloaded: importing a model's libraries here too could start threads in the process
    every later job is forked from.
    """
    # Answers go out on a copy of stdout; fd 1 itself goes nowhere, so whatever a model
    # or a library prints cannot corrupt the channel.
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    import satchel.model  # noqa: F401

    try:
        import pandas  # noqa: F401  (input examples are mostly frames)
    except ImportError:
        pass
    for line in sys.stdin:
        answers.write(json.dumps(_forked(json.loads(line))) + "\n")
        answers.flush()
    return 0


def _forked(job: dict[str, Any]) -> dict[str, Any]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the job, send the answer, never return
        os.close(read)
        code = 0
        try:
            # stdout is already nowhere (serve); so are stderr and stdin, which is the
            # job channel a model reading input() would otherwise steal from.
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 2)
            sys.stdin = open(os.devnull)  # noqa: SIM115  (the child exits with os._exit)
            os.environ.clear()
            os.environ.update(job["env"])
            os.chdir(job["cwd"])
            sys.path[:] = job["path"]
            answer: dict[str, Any] = {"modules": capture(job["dir"])}
        except BaseException as exc:  # reported to the caller as one line
            answer = {"error": (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0]}
            code = 1
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(answer))
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {"error": "the capture process died without an answer"}
    return dict(answer)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as exc:  # reported to the parent as one line
        print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        sys.exit(1)
