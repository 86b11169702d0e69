"""Load options: refuse a keyword neither ``load_model`` nor the model's flavor knows.

``load_model(path, devcie="cpu")`` used to load on the default device without a word: a
typo silently lost the option. A flavor lists the options it reads in ``load_options``;
a flavor that lists none (a third-party one written before this) is not second-guessed.
"""

from __future__ import annotations

import difflib
from typing import Any

# Taken for any flavor: the CLI passes the trust list and the MLflow opt-in to whatever
# model it loads, and MLflow's pyfunc takes ``model_config`` for every flavor.
GENERIC = ("allow_mlflow", "model_config", "skops_trusted_types", "trusted_types")
# load_model's own keywords, named in the message
OWN = ("allow_code", "verify", "require_digests", "allow_pickle", "env_manager", "wheelhouse")


def check(flavor: Any, options: dict[str, Any]) -> None:
    """Raise ``TypeError`` for options neither satchel nor ``flavor`` takes.

    Raises:
        TypeError: naming each unknown option, the closest known one, and every option
            the flavor and ``load_model`` accept.
    """
    declared = getattr(flavor, "load_options", None)
    if declared is None:
        return
    accepted = sorted({*declared, *GENERIC})
    unknown = sorted(set(options) - set(accepted) - set(OWN))
    if not unknown:
        return
    known = sorted({*accepted, *OWN})
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), known, n=1)
        hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise TypeError(
        f"load_model() got unknown keyword argument{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(hints)} for the {flavor.name} flavor; the {flavor.name} flavor takes: "
        f"{', '.join(sorted(declared)) or 'none of its own'}; any flavor takes: "
        f"{', '.join(GENERIC)}; load_model itself takes: {', '.join(OWN)}"
    )
