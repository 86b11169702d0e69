"""Which requests run inline on the event loop: the predict cost the executor goes by is
the model's own, also when the first calls come from many clients at once.

A model that holds the GIL for ~2 ms a call looked expensive when its first calls ran in
threads side by side (each call's process CPU was every thread's, its wall time mostly
waiting for the GIL), so it stayed in threads for good and paid the contention: about
twice the CPU a request. These tests fail with the process-wide measure.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from satchel.model import Prediction
from satchel.serving.server.execution import Executor, predict
from satchel.serving.server.repository import READY, ServedModel


class _Spin:
    """A model whose predict spends ``seconds`` of CPU in short stretches that let other
    threads in between (as numpy and scikit-learn code does), or sleeps."""

    out_of_process = False

    def __init__(self, seconds: float, *, sleep: bool = False) -> None:
        self.seconds, self.sleep = seconds, sleep

    def predict_detailed(self, data: Any, params: Any) -> Prediction:
        if self.sleep:
            time.sleep(self.seconds)
        else:
            end = time.thread_time() + self.seconds
            while time.thread_time() < end:
                time.sleep(0)  # lets another thread take the GIL
        return Prediction(output=[0], rows=1)


def _served(model: Any) -> ServedModel:
    return ServedModel("m", model=model, state=READY)


def _concurrently(served: ServedModel, threads: int, calls: int) -> None:
    def work() -> None:
        for _ in range(calls):
            predict(served, None, None)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_a_cheap_model_first_called_by_many_clients_runs_inline() -> None:
    served = _served(_Spin(0.002))
    _concurrently(served, threads=6, calls=4)  # the timed first calls all overlap
    assert served.predict_cpu_seconds is not None
    assert served.predict_cpu_seconds < 0.005  # its own ~2 ms, not six threads' worth
    assert Executor().inline(served, 100)


def test_a_model_that_waits_leaves_the_loop_also_when_its_calls_overlap() -> None:
    # 200 ms of waiting a call, four calls side by side: each keeps its whole wait
    served = _served(_Spin(0.2, sleep=True))
    _concurrently(served, threads=4, calls=1)
    assert served.predict_seconds is not None and served.predict_seconds > 0.02
    assert not Executor().inline(served, 100)


def test_a_lone_call_measures_its_whole_wall_time() -> None:
    served = _served(_Spin(0.02, sleep=True))
    predict(served, None, None)
    assert served.predict_seconds is not None and served.predict_seconds >= 0.02


def test_a_model_that_waits_leaves_the_loop() -> None:
    # no CPU, but 30 ms of wall time a call: inline would hold the loop that long
    served = _served(_Spin(0.03, sleep=True))
    for _ in range(3):
        predict(served, None, None)
    assert served.predict_cpu_seconds is not None and served.predict_cpu_seconds < 0.005
    assert not Executor().inline(served, 100)


def test_an_expensive_model_stays_in_threads() -> None:
    served = _served(_Spin(0.008))
    for _ in range(3):
        predict(served, None, None)
    assert not Executor().inline(served, 100)


def test_a_failed_call_measures_nothing() -> None:
    class Fails(_Spin):
        def predict_detailed(self, data: Any, params: Any) -> Prediction:
            raise RuntimeError("no")

    served = _served(Fails(0.0))
    try:
        predict(served, None, None)
    except RuntimeError:
        pass
    assert served.predict_seconds is None and served.predict_cpu_seconds is None


def test_a_model_that_waits_leaves_the_loop_however_many_calls_overlap() -> None:
    # 32 clients waiting 100 ms each, side by side: no share of the wait is another
    # call's, so none of it may be divided away
    served = _served(_Spin(0.1, sleep=True))
    pool = [threading.Thread(target=predict, args=(served, None, None)) for _ in range(32)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert served.predict_seconds is not None and served.predict_seconds > 0.02
    assert not Executor().inline(served, 100)
