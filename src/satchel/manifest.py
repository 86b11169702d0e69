"""The MLmodel manifest: read, validate, write.

Keys MLflow writes and satchel does not use are kept in ``extra`` and written back
unchanged, so a model that passes through satchel loses nothing. Nothing read here is
ever imported or executed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satchel._fs import MANIFEST_NAME
from satchel.errors import ModelFormatError
from satchel.schema import Signature

PYFUNC = "python_function"

# An MLmodel is a few kilobytes; a digest list of 100k files is a few megabytes. Both caps
# are checked before anything is expanded, so an alias bomb or a huge file costs nothing.
MAX_MANIFEST_BYTES = 16 << 20
MAX_MANIFEST_NODES = 1_000_000
MAX_MANIFEST_DEPTH = 64

# Flavor-section keys that name a file or directory (satchel's and MLflow's flavors).
_FLAVOR_PATH_KEYS = (
    "data",
    "pickled_model",
    "python_model",
    "model_path",
    "model_data",
    "saved_model_dir",
    "model_binary",
    "code",
)

_KNOWN = (
    "flavors",
    "model_uuid",
    "utc_time_created",
    "signature",
    "saved_input_example_info",
    "metadata",
    "model_size_bytes",
    "satchel_version",
    "artifact_digests",
)


def _yaml() -> Any:
    import yaml

    return yaml


@dataclass
class Manifest:
    """The contents of an MLmodel file."""

    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_uuid: str | None = None
    utc_time_created: str | None = None
    signature: Signature | None = None
    saved_input_example_info: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    model_size_bytes: int | None = None
    satchel_version: str | None = None
    artifact_digests: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pyfunc(self) -> dict[str, Any] | None:
        """The ``python_function`` section, the generic entry every loader starts from."""
        return self.flavors.get(PYFUNC)

    @property
    def python_version(self) -> str | None:
        pf = self.pyfunc or {}
        v = pf.get("python_version")
        return str(v) if v is not None else None

    def named_paths(self) -> list[tuple[str, Any, bool]]:
        """Every path this manifest names, as (what, value, must exist).

        The loader resolves each through :func:`satchel.paths.member`, so none may point
        outside the model directory, whichever flavor or tool would read it.
        """
        out: list[tuple[str, Any, bool]] = []
        pf = self.pyfunc or {}
        env = pf.get("env")
        if isinstance(env, dict):
            out.extend((f"env file {k}", v, False) for k, v in env.items() if v is not None)
        elif env is not None:
            out.append(("env file", env, False))
        info = self.saved_input_example_info
        if isinstance(info, dict):
            for key in ("artifact_path", "serving_input_path"):
                if info.get(key) is not None:
                    out.append((f"input example {key}", info[key], False))
        elif info is not None:
            raise ModelFormatError("'saved_input_example_info' is not a mapping")
        for name, section in self.flavors.items():
            for key in _FLAVOR_PATH_KEYS:
                if section.get(key) is not None:
                    # code/ is put on sys.path, so it must exist; flavors name their own
                    # missing files more precisely.
                    required = name == PYFUNC and key == "code"
                    out.append((f"{name}.{key}", section[key], required))
            artifacts = section.get("artifacts")
            if isinstance(artifacts, dict):
                for art, entry in artifacts.items():
                    value = entry.get("path") if isinstance(entry, dict) else entry
                    out.append((f"artifact '{art}'", value, False))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The manifest as MLflow lays it out (the writer sorts keys)."""
        d: dict[str, Any] = dict(self.extra)
        d["flavors"] = self.flavors
        for key in (
            "model_uuid",
            "utc_time_created",
            "saved_input_example_info",
            "metadata",
            "model_size_bytes",
            "satchel_version",
            "artifact_digests",
        ):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.signature is not None:
            d["signature"] = self.signature.to_dict()
            d.setdefault("is_signature_from_type_hint", False)
            d.setdefault("type_hint_from_example", False)
        return d

    def to_yaml(self) -> str:
        return str(_yaml().safe_dump(self.to_dict(), default_flow_style=False))

    def write(self, directory: str | os.PathLike[str]) -> None:
        """Write ``MLmodel`` into ``directory``."""
        Path(directory, MANIFEST_NAME).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = MANIFEST_NAME) -> Manifest:
        flavors = d.get("flavors")
        if not isinstance(flavors, dict) or not flavors:
            raise ModelFormatError(f"{source} has no 'flavors' section", path=source)
        for name, conf in flavors.items():
            if not isinstance(conf, dict):
                raise ModelFormatError(f"{source}: flavor '{name}' is not a mapping", path=source)
        sig = d.get("signature")
        if sig is not None and not isinstance(sig, dict):
            raise ModelFormatError(f"{source}: 'signature' is not a mapping", path=source)
        digests = d.get("artifact_digests")
        if digests is not None and not isinstance(digests, dict):
            raise ModelFormatError(f"{source}: 'artifact_digests' is not a mapping", path=source)
        size = d.get("model_size_bytes")
        return cls(
            flavors=flavors,
            model_uuid=_opt_str(d.get("model_uuid")),
            utc_time_created=_opt_str(d.get("utc_time_created")),
            signature=Signature.from_dict(sig) if sig else None,
            saved_input_example_info=d.get("saved_input_example_info"),
            metadata=d.get("metadata"),
            model_size_bytes=int(size) if size is not None else None,
            satchel_version=_opt_str(d.get("satchel_version")),
            artifact_digests={str(k): str(v) for k, v in digests.items()} if digests else None,
            extra={k: v for k, v in d.items() if k not in _KNOWN},
        )

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> Manifest:
        """Read ``directory/MLmodel``; raises ModelFormatError naming what is wrong."""
        root = Path(directory)
        path = root / MANIFEST_NAME
        if not root.is_dir():
            raise ModelFormatError(f"{root} is not a directory", path=str(root))
        if not path.is_file():
            raise ModelFormatError(
                f"{root} has no MLmodel file: not a model directory", path=str(root)
            )
        if path.is_symlink():
            raise ModelFormatError(f"{path} is a symlink, not a file", path=str(path))
        data = parse_bounded(path)
        try:
            return cls.from_dict(data, source=str(path))
        except ModelFormatError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFormatError(f"{path} is malformed: {reason[:200]}", path=str(path)) from None


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def parse_bounded(path: Path) -> dict[str, Any]:
    """Parse an MLmodel file, refusing one too big or one whose aliases expand too far.

    The size is checked before reading, and the YAML node graph is composed (aliases
    stay shared there) and measured as the tree it would become before any Python object
    is built.

    Raises:
        ModelFormatError: too big, too many nodes once aliases are expanded, too deep, a
            recursive alias, unreadable, or not a mapping.
    """
    yaml = _yaml()
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ModelFormatError(
                f"{path} is {size} bytes; an MLmodel may be at most {MAX_MANIFEST_BYTES} bytes",
                path=str(path),
            )
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ModelFormatError(
                f"{path} is larger than {MAX_MANIFEST_BYTES} bytes, the limit for an MLmodel",
                path=str(path),
            )
        text = raw.decode("utf-8")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _count_nodes(node, 0, {}, set(), str(path))
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFormatError(f"{path} is unreadable: {reason}", path=str(path)) from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path} is not a YAML mapping", path=str(path))
    return data


def _count_nodes(node: Any, depth: int, memo: dict[int, int], active: set[int], src: str) -> int:
    """Nodes in the tree ``node`` expands to (an alias counts its whole target again)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > MAX_MANIFEST_DEPTH:
        raise ModelFormatError(
            f"{src} nests deeper than {MAX_MANIFEST_DEPTH} levels, the limit for an MLmodel",
            path=src,
        )
    if key in active:
        raise ModelFormatError(f"{src} has a recursive YAML alias", path=src)
    active.add(key)
    total = 1
    value = node.value
    if isinstance(value, list):
        for item in value:
            if isinstance(item, tuple):
                total += sum(_count_nodes(x, depth + 1, memo, active, src) for x in item)
            else:
                total += _count_nodes(item, depth + 1, memo, active, src)
            if total > MAX_MANIFEST_NODES:
                raise ModelFormatError(
                    f"{src} expands to more than {MAX_MANIFEST_NODES} YAML nodes (through "
                    "aliases or sheer size), the limit for an MLmodel",
                    path=src,
                )
    active.discard(key)
    memo[key] = total
    return total
