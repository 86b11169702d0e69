"""Monitoring: the reference profile saved with a model, and drift measured against it.

``build_profile`` summarises reference data into fixed bins; ``Tally`` counts new data
into the same bins and ``drift`` turns two histograms into PSI, Jensen-Shannon distance,
null rates and out-of-range rates. numpy and pandas are imported by the submodules only.
"""

from __future__ import annotations

from satchel.monitoring.drift import ColumnCounts, DriftFigures, js_distance, psi
from satchel.monitoring.profile import (
    PROFILE_FILE,
    ColumnProfile,
    Profile,
    build_profile,
)
from satchel.monitoring.reference import check_against_signature, profile_model
from satchel.monitoring.tally import Tally

__all__ = [
    "PROFILE_FILE",
    "ColumnCounts",
    "ColumnProfile",
    "DriftFigures",
    "Profile",
    "Tally",
    "build_profile",
    "check_against_signature",
    "js_distance",
    "profile_model",
    "psi",
]
