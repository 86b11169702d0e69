"""Saves stay atomic when several real processes save and load one path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import satchel

# A saver: waits for the start file, saves a callable returning ``value``, prints the outcome.
_SAVER = """
import os, sys, time
from pathlib import Path
from typing import Any
import satchel
from satchel.errors import ModelExistsError
path, value, start, overwrite = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 1

class Const:
    def __init__(self, v):
        self.v = v
    def __call__(self, df):
        return df.assign(out=self.v)[["out"]]

while not start.exists():
    time.sleep(0.001)
for i in range(rounds):
    try:
        satchel.save_model(Const(value + (i % 2)), path, overwrite=overwrite,
                           pip_requirements=["x"], metadata={"value": value + (i % 2)})
        print("OK", flush=True)
    except ModelExistsError as exc:
        print("EXISTS", exc, flush=True)
"""

# A loader: loads ``path`` in a loop until the stop file appears; reports every outcome.
_LOADER = """
import sys, time, collections, json
from pathlib import Path
from typing import Any
import pandas as pd
import satchel
path, stop, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
seen = collections.Counter()
df = pd.DataFrame({"a": [1.0]})
ready.touch()  # imports done: the writer may start
while not stop.exists():
    try:
        m = satchel.load_model(path)
        out = int(m.predict(df)["out"].iloc[0])
        meta = m.metadata["value"]
        seen["ok" if out == meta else f"MIXED {out} vs {meta}"] += 1
    except Exception as exc:
        seen[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
print(json.dumps(seen))
"""


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_overwrite_false_exactly_one_of_n_processes_wins(tmp_path: Path) -> None:
    path = tmp_path / "model"
    start = tmp_path / "go"
    procs = [_start(_SAVER, str(path), str(10 * i), str(start), "0") for i in range(4)]
    time.sleep(2.0)  # all four import satchel and wait at the line
    start.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    results = [o[0].split()[0] if o[0] else f"ERR {o[1][-300:]}" for o in outs]
    assert sorted(results) == ["EXISTS", "EXISTS", "EXISTS", "OK"], results
    winner = results.index("OK")
    assert satchel.load_model(path).metadata["value"] == 10 * winner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "model"]  # no temp left


def test_loads_during_overwrites_see_a_whole_model(tmp_path: Path) -> None:
    path = tmp_path / "model"
    start = tmp_path / "go"
    stop = tmp_path / "stop"
    satchel.save_model(lambda df: df.assign(out=0)[["out"]], path, metadata={"value": 0})
    ready = [tmp_path / f"ready{i}" for i in range(3)]
    loaders = [_start(_LOADER, str(path), str(stop), str(r)) for r in ready]
    writer = _start(_SAVER, str(path), "1", str(start), "1", "40")
    # The loaders import pandas and satchel first; on a busy machine that can take
    # longer than the writer's 40 saves, and then no load would overlap an overwrite.
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(r.exists() for r in ready), "the loader processes did not start"
    start.touch()
    w_out, w_err = writer.communicate(timeout=300)
    stop.touch()
    assert w_out.split().count("OK") == 40, w_err[-500:]
    seen: dict[str, int] = {}
    for p in loaders:
        out, err = p.communicate(timeout=120)
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            seen[k] = seen.get(k, 0) + v
    assert seen.get("ok", 0) > 20, seen
    assert set(seen) == {"ok"}, seen
    # Only the path and the version it points to remain.
    names = sorted(p.name for p in tmp_path.iterdir()
                   if p.name not in ("go", "stop") and not p.name.startswith("ready"))
    assert len(names) == 2 and names[1] == "model" and names[0].startswith(".model.v-"), names


_SLOW_SAVER = """
import sys, time
from pathlib import Path
from typing import Any
import satchel

class Slow:
    def __call__(self, df):
        return df

    def __reduce__(self):
        Path(sys.argv[2]).touch()  # tell the test the save is under way
        time.sleep(60)
        return (int, ())

satchel.save_model(Slow(), sys.argv[1], overwrite=True, flavor="python",
                   pip_requirements=["x"])
"""


def test_killed_overwrite_leaves_old_model_and_next_save_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "model"
    satchel.save_model(lambda df: df.assign(out=7)[["out"]], path, metadata={"value": 7})
    # A big file in the killed save's temp directory, as a real model would leave.
    writing = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVER, str(path), str(writing)])
    deadline = time.monotonic() + 60
    while not writing.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    left = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert left, "the save writes into a temporary sibling"
    (left[0] / "big.bin").write_bytes(os.urandom(1 << 20))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The interrupted overwrite changed nothing.
    assert satchel.load_model(path).metadata["value"] == 7
    # The next save to the same parent (another model) removes the dead save's leftovers.
    satchel.save_model(lambda df: df, tmp_path / "other")
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert satchel.load_model(path).metadata["value"] == 7


# Set by the test below: an overwrite that lands while a model loads (run once).
_MID_LOAD: list[Any] = []


class _ReadsItsArtifact(satchel.PythonModel):
    """Predicts the number in its artifact, read at load after the manifest was read."""

    def load_context(self, context: Any) -> None:
        while _MID_LOAD:
            _MID_LOAD.pop()()
        self.value = int(Path(context.artifacts["v"]).read_text())

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return model_input.assign(out=self.value)[["out"]]


def _save_value(path: Path, value: int, *, overwrite: bool = False) -> None:
    src = path.parent / f"src{value}" / "v.txt"  # one artifact name in both versions
    src.parent.mkdir()
    src.write_text(str(value))
    from satchel.flavors import python as python_flavor

    python_flavor.save_model(path, _ReadsItsArtifact(), artifacts={"v": str(src)},
                                      metadata={"value": value}, overwrite=overwrite)


def test_the_first_overwrite_of_a_plain_directory_mid_load_is_not_mixed(
        tmp_path: Path) -> None:
    """A model saved once is a plain directory, read through its own path; the first
    overwrite turns that path into a symlink to the new version. A load that read the
    old manifest before the swap and the artifact after it would mix the two versions."""
    import pandas as pd

    path = tmp_path / "model"
    _save_value(path, 0)
    assert not path.is_symlink()
    _MID_LOAD.append(lambda: _save_value(path, 1, overwrite=True))
    model = satchel.load_model(path)
    assert not _MID_LOAD and path.is_symlink()  # the overwrite did land mid-load
    out = int(model.predict(pd.DataFrame({"a": [1.0]}))["out"].iloc[0])
    assert (out, model.metadata["value"]) == (1, 1)
