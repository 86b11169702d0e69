"""schemathesis against a live server's /openapi.json: no 5xx, replies conform to the spec.

The server serves two models (a column model with string, double and long columns plus
params, and the iris classifier), so every generated operation, MLflow's protocol and
V2 for each model, is exercised with data that fits the spec and data that does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def fuzz_server(scale_model_dir: Path, iris_model_dir: Path, start_server: Any
                ) -> Iterator[Any]:
    with start_server(f"scale={scale_model_dir}", "-m", f"iris={iris_model_dir}",
                      "--log-level", "warning") as server:
        yield server


EXAMPLES = 25  # per operation and generation mode


def _fuzz(operation: Any, mode: GenerationMode, base_url: str) -> None:
    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS)

    run()


def test_no_server_errors_and_replies_conform(fuzz_server: Any) -> None:
    # schemathesis' pytest plugin does not run under pytest 9, so its operations are
    # driven through hypothesis directly: every operation, data that fits the spec
    # and data that does not.
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzz_server.url)
            except Unsatisfiable:
                # nothing to break in a GET without parameters: no negative cases exist
                assert mode is GenerationMode.NEGATIVE
            except Exception as exc:  # noqa: BLE001 - collected, reported all at once
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): "
                                f"{str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_the_server_survived(fuzz_server: Any) -> None:
    from satchel.serving.server.metrics import parse_page

    page = parse_page(fuzz_server.get("/metrics").body.decode())
    scored = {k: v for k, v in page.items() if k.startswith("satchel_requests_total")
              and ("/invocations" in k or "/infer" in k)}
    # the fuzzing reached the scoring routes with data they took and data they refused
    assert any('status="200"' in k for k in scored) and any('status="400"' in k for k in scored)
    assert not any('status="5' in k for k in page if k.startswith("satchel_requests_total"))
    assert fuzz_server.get("/ping").status == 200
    assert fuzz_server.proc.poll() is None
    log = fuzz_server.log.read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI application" not in log
