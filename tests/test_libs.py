"""satchel.libs: a flavor's missing library and newer-release warnings."""

from __future__ import annotations

import warnings

import pytest

from satchel.errors import FlavorLoadError, LibraryVersionWarning, MissingLibraryError
from satchel.libs import is_newer, release, require, warn_if_newer


def test_require_imports_an_installed_module() -> None:
    assert require("json", flavor="x").__name__ == "json"


def test_require_names_the_extra_for_a_missing_module() -> None:
    with pytest.raises(MissingLibraryError) as info:
        require("satchel_no_such_library", flavor="xgboost")
    msg = str(info.value)
    assert "pip install 'satchel[xgboost]'" in msg and "satchel_no_such_library" in msg
    assert "\n" not in msg
    # callers catching either the flavor error or a plain ImportError both see it
    assert isinstance(info.value, FlavorLoadError) and isinstance(info.value, ImportError)
    assert info.value.flavor == "xgboost" and info.value.module == "satchel_no_such_library"


def test_require_uses_a_different_extra_when_given() -> None:
    with pytest.raises(MissingLibraryError, match=r"satchel\[trees\]"):
        require("satchel_no_such_library", flavor="xgboost", extra="trees")


@pytest.mark.parametrize(
    ("saved", "installed", "newer"),
    [
        ("3.3.0", "3.2.0", True),
        ("3.10", "3.9.9", True),
        ("3.2", "3.2.0", False),
        ("3.2.0rc1", "3.2.0", False),
        ("2.0", "3.0", False),
        ("nightly", "3.0", False),
        ("", "3.0", False),
    ],
)
def test_is_newer(saved: str, installed: str, newer: bool) -> None:
    assert is_newer(saved, installed) is newer


def test_release_parses_the_numeric_part() -> None:
    assert release("v1.2.3.post1") == (1, 2, 3)
    assert release("garbage") is None


def test_warn_if_newer_names_both_versions() -> None:
    with pytest.warns(LibraryVersionWarning) as rec:
        warn_if_newer("pyyaml", "999.0", what="model m")
    msg = str(rec[0].message)
    assert "pyyaml 999.0" in msg and "model m" in msg
    from importlib.metadata import version

    assert f"pyyaml {version('pyyaml')}" in msg
    w = rec[0].message
    assert isinstance(w, LibraryVersionWarning) and w.saved == "999.0"


@pytest.mark.parametrize("saved", ["0.1", None, "", "not-a-version"])
def test_warn_if_newer_is_quiet_for_older_or_unknown(saved: str | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_newer("pyyaml", saved)
        warn_if_newer("satchel-no-such-distribution", "99")
