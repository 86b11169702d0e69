"""A registered model's promotion policy, read from YAML.

```yaml
protect:
  aliases: [champion]          # moving these needs an approved request
  stages: [Production]
approvers: [bob, carol]        # identities that may approve (never their own request)
admins: [root]                 # identities that may override failed gates (audited)
evaluation:                    # gates on the candidate's attached evaluation result
  dataset: holdout             # the result must be on this named dataset
  metrics: {accuracy: {min: 0.9}}
  no_significant_regression: true   # against the version holding the alias now
  bias: {max_gap: {accuracy: 0.05}, min_selection_rate_ratio: 0.8}
signature_compatible: true     # the holder's clients keep working (inputs and types)
validate: true                 # files verify, the model loads, predicts on its example
model_card: [owner, intended_use, training_data]   # required version metadata
```

Every refusal names the key and what was given (PolicyFormatError); nothing is stored
from a policy that does not parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from satchel.errors import PolicyFormatError
from satchel.evaluate.gates import Thresholds

_KEYS = {"protect", "approvers", "admins", "evaluation", "signature_compatible", "validate",
         "model_card"}


@dataclass(frozen=True)
class Policy:
    """Parsed policy; :meth:`parse` validates, ``text`` keeps the YAML as given."""

    aliases: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    evaluation: Thresholds | None = None
    signature_compatible: bool = False
    validate: bool = False
    model_card: tuple[str, ...] = ()
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str, *, source: str = "policy") -> Policy:
        """Parse and validate YAML text."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyFormatError(f"{source} is not valid YAML: "
                                    f"{str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise PolicyFormatError(f"{source}: expected a mapping, got {type(data).__name__}")
        extra = sorted(set(map(str, data)) - _KEYS)
        if extra:
            raise PolicyFormatError(f"{source}: unknown key(s) {extra}; allowed: {sorted(_KEYS)}")
        protect = data.get("protect") or {}
        if not isinstance(protect, dict) or set(protect) - {"aliases", "stages"}:
            raise PolicyFormatError(f"{source}: protect must be a mapping with aliases and/or "
                                    "stages")
        stages = _names(protect.get("stages"), f"{source}: protect.stages")
        from satchel.registry.entities import STAGES

        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise PolicyFormatError(f"{source}: protect.stages has unknown stage(s) {bad}; "
                                    f"stages are {list(STAGES)}")
        aliases = _names(protect.get("aliases"), f"{source}: protect.aliases")
        if not aliases and not stages:
            raise PolicyFormatError(f"{source}: protect names no alias or stage; a policy "
                                    "protects at least one")
        evaluation = data.get("evaluation")
        return cls(
            aliases=aliases, stages=stages,
            approvers=_names(data.get("approvers"), f"{source}: approvers"),
            admins=_names(data.get("admins"), f"{source}: admins"),
            evaluation=(Thresholds.from_dict(evaluation, source=f"{source}: evaluation")
                        if evaluation is not None else None),
            signature_compatible=_flag(data, "signature_compatible", source),
            validate=_flag(data, "validate", source),
            model_card=_names(data.get("model_card"), f"{source}: model_card"),
            text=text,
        )

    def protects(self, kind: str, target: str) -> bool:
        """Whether moving alias/stage ``target`` needs an approved request."""
        return target in (self.aliases if kind == "alias" else self.stages)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyFormatError(f"{where} must be a list of names, got {value!r:.80}")
    return tuple(value)


def _flag(data: dict[str, Any], key: str, source: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise PolicyFormatError(f"{source}: {key} must be true or false, got "
                                f"{type(value).__name__}")
    return value
