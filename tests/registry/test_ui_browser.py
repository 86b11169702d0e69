"""The registry web UI in a real headless Chromium, against a real ``satchel registry
serve`` with token roles: sign in with a token, open a model, see its versions and
evaluation report, approve a pending request, see the alias move and the audit entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import satchel
from satchel.registry import Registry
from satchel.registry.governance import Governance

from .conftest import TOKENS

pytestmark = pytest.mark.browser

POLICY = """protect: {aliases: [champion]}
approvers: [ed]
evaluation: {dataset: holdout, metrics: {accuracy: {min: 0.9}}, no_significant_regression: true}
model_card: [owner]
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sign_in_open_model_approve_request(server: Any, iris: tuple[Any, Any],
                                            iris_model_dir: Path, iris_model_dir_2: Path,
                                            browser_page: Any) -> None:
    reg = Registry(server.db_url, actor="erin", artifact_root=server.artifact_root)
    reg.register(iris_model_dir_2, "iris", metadata={"owner": "risk"})
    reg.register(iris_model_dir, "iris", metadata={"owner": "risk"}, git_commit="abc1234")
    reg.set_alias("iris", "champion", 1)
    gov = Governance(reg)
    gov.set_policy("iris", POLICY)
    X, y = iris
    result = satchel.evaluate(reg.local_path(reg.get_version("iris", 2)),
                              X.assign(species=y.to_numpy()), "species",
                              baseline=reg.local_path(reg.get_version("iris", 1)),
                              resamples=100, dataset_name="holdout")
    gov.attach_results("iris", 2, result)
    req = gov.request("iris", "champion", 2)
    assert req.state == "pending", req.gates

    b = browser_page
    page = b.page
    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", "not-a-token-at-all-000")
    page.click("button[type=submit]")
    assert "not known to this registry" in page.locator("#login").inner_text()
    # the refused sign-in answers 401, which Chromium logs as a failed load: that one only
    assert [e for e in b.console_errors if "401" not in e] == []
    b.console_errors.clear()
    page.fill("#token", TOKENS["editor2"])  # ed, an editor and the policy's approver
    page.click("button[type=submit]")
    assert "signed in as ed (editor)" in page.locator("header nav").inner_text()
    page.click("table.models a:text('iris')")
    assert page.locator("table.versions tbody tr").count() == 2
    assert "git commit: abc1234" in page.locator("table.versions").inner_text()
    assert "champion → version 1" in page.locator("#summary").inner_text()
    assert "pending" in page.locator("table.requests").inner_text()
    # the attached evaluation opens as its report
    page.click("table.versions a:text('evaluation 1 on holdout')")
    assert page.locator("#metrics tbody tr").count() == 6
    assert page.locator("figure svg").count() >= 4
    page.go_back()
    page.click("button.approve")
    assert "Request 1 approved" in page.locator("#notice").inner_text()
    assert "champion → version 2" in page.locator("#summary").inner_text()
    audit = page.locator("table.audit tbody tr").all_inner_texts()
    assert "set_alias" in audit[0] and "ed" in audit[0]
    assert "approve_request" in audit[1]
    assert "chain verified" in page.locator("#audit").inner_text()
    assert reg.get_version_by_alias("iris", "champion").version == 2
    assert b.console_errors == [] and b.failed_requests == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_readers_cannot_decide_and_bad_pages_are_4xx(server: Any,
                                                     iris_model_dir: Path) -> None:
    reg = Registry(server.db_url, actor="erin", artifact_root=server.artifact_root)
    reg.register(iris_model_dir, "iris")
    reg.register(iris_model_dir, "iris")
    reg.set_alias("iris", "champion", 1)
    gov = Governance(reg)
    gov.set_policy("iris", "protect: {aliases: [champion]}\napprovers: [ed]\n")
    req = gov.request("iris", "champion", 2)
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        assert http.get("/").headers["location"] == "/login"
        assert http.post("/login", data={"token": "x"}).status_code == 401
        reader = {"cookie": f"satchel_registry_token={TOKENS['reader']}"}
        page = http.get("/models/iris", headers=reader)
        assert page.status_code == 200 and "button" not in page.text.split("Promotion")[1]
        denied = http.post(f"/requests/{req.id}/approve", headers=reader)
        assert denied.status_code == 403 and "needs the editor role" in denied.text
        assert "Traceback" not in denied.text
        missing = http.get("/models/nope", headers=reader)
        assert missing.status_code == 404 and "no registered model named" in missing.text
        editor = {"cookie": f"satchel_registry_token={TOKENS['editor']}"}  # the requester
        own = http.post(f"/requests/{req.id}/approve", headers=editor)
        assert own.status_code in (403, 409) and "another approver" in own.text
    assert reg.get_version_by_alias("iris", "champion").version == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_approver_rejects_with_a_reason(server: Any, iris_model_dir: Path,
                                        browser_page: Any) -> None:
    reg = Registry(server.db_url, actor="erin", artifact_root=server.artifact_root)
    reg.register(iris_model_dir, "iris")
    reg.register(iris_model_dir, "iris")
    reg.set_alias("iris", "champion", 1)
    gov = Governance(reg)
    gov.set_policy("iris", "protect: {aliases: [champion]}\napprovers: [ed]\n")
    req = gov.request("iris", "champion", 2)
    b = browser_page
    page = b.page
    page.goto(server.url + "/login")
    page.fill("#token", TOKENS["editor2"])  # ed, the approver
    page.click("button[type=submit]")
    page.click("table.models a:text('iris')")
    # the reason is required: an empty one is not submitted (the browser's own check)
    page.click("button.reject")
    assert page.url.endswith("/models/iris")
    assert gov.get_request(req.id).state == "pending"
    page.fill("table.requests textarea[name=reason]", "needs the Q3 holdout")
    page.click("button.reject")
    assert f"Request {req.id} rejected" in page.locator("#notice").inner_text()
    assert "rejected by ed: needs the Q3 holdout" in page.locator("table.requests").inner_text()
    assert page.locator("table.requests button").count() == 0
    assert "champion → version 1" in page.locator("#summary").inner_text()
    assert "reject_request" in page.locator("table.audit tbody tr").all_inner_texts()[0]
    assert reg.get_version_by_alias("iris", "champion").version == 1
    assert b.console_errors == [] and b.failed_requests == []
