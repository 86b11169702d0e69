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
        yaml = _yaml()
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFormatError(f"{path} is unreadable: {reason}", path=str(path)) from None
        if not isinstance(data, dict):
            raise ModelFormatError(f"{path} is not a YAML mapping", path=str(path))
        return cls.from_dict(data, source=str(path))


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)
