"""``runs:/RUN_ID/PATH`` sources, resolved against a local MLflow file store.

MLflow users register models by run URI. satchel has no tracking server, so it reads
the one kind of tracking store it can read without MLflow: a file store
(``file:./mlruns``, the directory ``mlflow`` writes with ``MLFLOW_TRACKING_URI=file:...``).
Its layout: ``<root>/<experiment>/<run_id>/meta.yaml`` for a run, with its files under
``artifacts/``; MLflow 3 keeps a model logged in a run as a "logged model" at
``<root>/<experiment>/models/<model_id>/`` (``meta.yaml`` names ``source_run_id`` and
``name``; files under ``artifacts/``), and ``runs:/RUN/NAME`` means that model.

Everything is looked up inside the store's directory, never through a path a
``meta.yaml`` names (a store can be moved, and a crafted one could point anywhere), and
the resolved directory must stay inside the run's (or logged model's) artifacts. Any
other tracking URI (a database, a server) is refused with what to do instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from satchel.errors import RegistryInputError, RegistryNotFoundError

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_NO_STORE = (
    "runs:/ sources are read from a local MLflow file store: pass "
    "--mlflow-tracking-uri file:./mlruns (Registry.register(..., mlflow_tracking_uri=...)) "
    "or set MLFLOW_TRACKING_URI; satchel has no tracking server"
)


@dataclass(frozen=True)
class RunSource:
    """A resolved ``runs:/`` URI: the model directory, and the lineage to record."""

    uri: str
    run_id: str
    experiment_id: str
    directory: Path
    logged_model_id: str | None = None


def is_runs_uri(value: object) -> bool:
    """True for ``runs:/...`` strings."""
    return isinstance(value, str) and value.startswith("runs:/")


def parse(uri: str) -> tuple[str, str]:
    """``(run_id, artifact_path)`` of ``runs:/RUN_ID/PATH``; hostile parts are refused."""
    if not is_runs_uri(uri) or len(uri) > 4096:
        raise RegistryInputError("a run source is runs:/RUN_ID/PATH (up to 4096 characters)",
                                 field="source")
    run_id, _, path = uri[len("runs:/"):].partition("/")
    if not _RUN_ID.match(run_id):
        raise RegistryInputError(
            f"run id {run_id[:80]!r} in {uri[:120]!r} is not a run id (letters, digits, "
            "'_' and '-', up to 64)", field="source")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise RegistryInputError(
            f"{uri[:120]!r} names no artifact path: use runs:/{run_id}/PATH (e.g. "
            f"runs:/{run_id}/model)", field="source")
    if any(p == ".." or "\\" in p or "\x00" in p or ":" in p for p in parts):
        raise RegistryInputError(
            f"artifact path {path[:120]!r} of {uri[:120]!r} must stay inside the run's "
            "artifacts (no '..', '\\', ':' or NUL)", field="source")
    return run_id, "/".join(parts)


def store_root(tracking_uri: str | None) -> Path:
    """The file store's directory for ``tracking_uri`` (default ``$MLFLOW_TRACKING_URI``)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        raise RegistryInputError(_NO_STORE, field="mlflow_tracking_uri")
    if uri.startswith("file:"):
        rest = uri[len("file:"):]
        if rest.startswith("//"):  # file:///abs or file://localhost/abs
            parsed = urlparse(uri)
            if parsed.netloc not in ("", "localhost"):
                raise RegistryInputError(
                    f"file URI host {parsed.netloc[:80]!r} is not this machine",
                    field="mlflow_tracking_uri")
            rest = parsed.path
        root = Path(unquote(rest)).expanduser()
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):
        scheme = uri.split(":", 1)[0]
        raise RegistryInputError(
            f"the MLflow tracking URI is a {scheme}: URI; satchel reads runs:/ sources only "
            "from a local file store (file:PATH). Download the model first (mlflow "
            "artifacts download -u runs:/RUN_ID/PATH -d DIR) and register DIR with "
            "--run-id RUN_ID", field="mlflow_tracking_uri")
    else:
        root = Path(uri).expanduser()
    if not root.is_dir():
        raise RegistryNotFoundError(
            f"the MLflow file store {str(root)[:200]!r} does not exist or is not a "
            "directory", kind="mlflow_tracking_uri", name=str(root)[:200])
    return root.absolute()


def resolve(uri: str, tracking_uri: str | None = None) -> RunSource:
    """The local model directory ``uri`` names in the file store."""
    run_id, path = parse(uri)
    root = store_root(tracking_uri)
    experiments = sorted(p.name for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith(".") and p.name != "models")
    run_dir = next((root / e / run_id for e in experiments
                    if (root / e / run_id / "meta.yaml").is_file()), None)
    if run_dir is None:
        shown = ", ".join(experiments[:10]) or "none"
        raise RegistryNotFoundError(
            f"no run {run_id!r} in the MLflow file store {str(root)[:200]} "
            f"(experiments: {shown})", kind="run", name=run_id, available=experiments[:10])
    experiment = run_dir.parent.name
    head, _, rest = path.partition("/")
    logged = _logged_model(run_dir.parent / "models", run_id, head)
    if logged is not None:
        base, model_id = logged / "artifacts", logged.name
        target = base / rest if rest else base
    else:
        base, model_id = run_dir / "artifacts", None
        target = base / path
    resolved = target.resolve()
    if not resolved.is_relative_to(base.resolve()):
        raise RegistryInputError(
            f"{uri[:120]!r} leaves the run's artifacts (through a symbolic link)",
            field="source")
    if not (resolved / "MLmodel").is_file():
        have = sorted(p.name for p in base.iterdir())[:10] if base.is_dir() else []
        raise RegistryNotFoundError(
            f"run {run_id!r} has no model at {path!r} (no MLmodel file there); its "
            f"artifacts: {', '.join(have) or 'none'}", kind="run_artifact", name=path,
            available=have)
    return RunSource(uri=uri, run_id=run_id, experiment_id=experiment, directory=resolved,
                     logged_model_id=model_id)


def _logged_model(models: Path, run_id: str, name: str) -> Path | None:
    """MLflow 3's logged model named ``name`` from run ``run_id``, if any."""
    import yaml

    if not models.is_dir():
        return None
    found = []
    for meta in models.glob("*/meta.yaml"):
        try:
            data = yaml.safe_load(meta.read_text("utf-8")) or {}
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("source_run_id") == run_id \
                and data.get("name") == name:
            found.append((int(data.get("creation_timestamp") or 0), meta.parent))
    # the newest, as MLflow does when a run logged two models under one name
    return max(found)[1] if found else None
