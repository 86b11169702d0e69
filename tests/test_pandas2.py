"""satchel on pandas 2 as well as pandas 3: the pandas-sensitive tests, run again on 2.x.

The suite's environment has pandas 3 (what CI installs today, and what MLflow 3.17 pins
in the models it saves). satchel claims both, so this test builds a venv that sees this
environment's packages through a .pth file, installs only pandas 2.x (and what pandas 2
needs that pandas 3 does not) ahead of them, and runs the tests where pandas' behaviour
differs between the two (text dtypes, copy-on-write, nulls) in it: the coercion policy,
save/load, signatures and examples, every serving codec, and the sklearn, statsmodels
and python flavors.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.pandas2

PANDAS2 = os.environ.get("SATCHEL_PANDAS2_VERSION", "2.3.3")
ROOT = Path(__file__).resolve().parent.parent
SUBSET = [
    "tests/test_coercion.py",
    "tests/test_save_load.py",
    "tests/test_signature.py",
    "tests/test_schema.py",
    "tests/test_example.py",
    "tests/serving/protocols",
    "tests/flavors/test_sklearn.py",
    "tests/flavors/test_statsmodels.py",
    "tests/flavors/test_python.py",
]


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("PYTEST_")
    }


@pytest.fixture(scope="module")
def pandas2_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter that sees this environment (satchel included) but pandas 2.x."""
    root = os.environ.get("SATCHEL_PANDAS2_VENV")
    venv = Path(root) if root else tmp_path_factory.mktemp("pandas2-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=_env(),
    ).stdout.strip()
    # Every site directory of this interpreter, in order (a .pth line adds its directory
    # but not the .pth files inside it, so chained environments are listed one by one).
    stdlib = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
    dirs = [p for p in sys.path if p and Path(p).is_dir() and p not in stdlib]
    dirs = [p for p in dirs if "site-packages" in p or "__editable__" in p]
    Path(own, "suite_env.pth").write_text("\n".join(dirs) + "\n", "utf-8")
    probe = "import pandas, satchel; print(pandas.__version__)"

    def version() -> str:
        out = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, timeout=120, env=_env()
        )
        return out.stdout.strip() if out.returncode == 0 else f"error: {out.stderr[-500:]}"

    if version() != PANDAS2:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-compile", f"pandas=={PANDAS2}"],
            capture_output=True,
            text=True,
            timeout=900,
            env=_env(),
        )
        if done.returncode != 0:
            pytest.fail(f"cannot install pandas {PANDAS2} into {venv}: {done.stderr[-2000:]}")
    got = version()
    if got != PANDAS2:
        pytest.fail(f"the pandas 2 venv {venv} imports pandas {got}, wanted {PANDAS2}")
    return python


def test_pandas_sensitive_tests_pass_on_pandas_2(pandas2_python: Path) -> None:
    done = subprocess.run(
        [
            str(pandas2_python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not (pandas2 or spark or docker or interop or browser or postgres)",
            *SUBSET,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
        env=_env(),
    )
    tail = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 300 and " failed" not in done.stdout, tail
