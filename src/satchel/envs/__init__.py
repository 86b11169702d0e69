"""Per-model environments: a virtualenv per distinct set of requirements, built once.

``EnvSpec.from_model(dir)`` says what a model needs; ``EnvCache.ensure(spec)`` returns a
ready environment, building it (uv when installed, else pip; offline from a wheelhouse
when given) under a lock with an atomic rename, or reusing the cached one.
"""

from __future__ import annotations

from satchel.envs.cache import EnvCache, Environment, default_cache_dir
from satchel.envs.spec import EnvSpec

ENV_MANAGERS = ("local", "venv")

__all__ = ["ENV_MANAGERS", "EnvCache", "EnvSpec", "Environment", "default_cache_dir"]
