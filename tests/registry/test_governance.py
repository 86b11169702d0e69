"""Promotion policies, attached evaluation results, requests, approvals and overrides,
on SQLite and PostgreSQL: nothing moves a protected alias but an approved request, and
every step is in the (verified) audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import PolicyError, PolicyFormatError, RegistryInputError
from satchel.registry.governance import Governance

POLICY = """
protect: {aliases: [champion], stages: [Production]}
approvers: [bob]
admins: [root]
evaluation:
  dataset: holdout
  metrics: {accuracy: {min: 0.9}}
  no_significant_regression: true
signature_compatible: true
validate: true
model_card: [owner, intended_use, training_data]
"""
CARD = {"owner": "risk team", "intended_use": "demo", "training_data": "iris"}


@pytest.fixture
def table(iris: tuple[Any, Any]) -> pd.DataFrame:
    X, y = iris
    return X.assign(species=y.to_numpy())


@pytest.fixture
def governed(registry: Any, iris_model_dir: Path, iris_model_dir_2: Path,
             tmp_path: Path, iris: tuple[Any, Any]) -> Any:
    """iris v1 (champion, C=0.1), v2 (a better challenger), v3 (a bad one without a model
    card)."""
    from sklearn.dummy import DummyClassifier

    X, y = iris
    weak = tmp_path / "weak"
    satchel.save_model(DummyClassifier(strategy="most_frequent").fit(X, y), weak,
                       input_example=X.head(3))
    registry.register(iris_model_dir_2, "iris", metadata=CARD)
    registry.register(iris_model_dir, "iris", metadata=CARD)
    registry.register(weak, "iris")
    registry.set_alias("iris", "champion", 1)
    gov = Governance(registry)
    gov.set_policy("iris", POLICY)
    return gov


def _as(gov: Governance, actor: str, roles: tuple[str, ...] = ()) -> Governance:
    return Governance(gov.registry.with_actor(actor), roles=roles)


def _evaluate(gov: Governance, version: int, table: pd.DataFrame) -> None:
    reg = gov.registry
    path = reg.local_path(reg.get_version("iris", version))
    holder = reg.local_path(reg.get_version_by_alias("iris", "champion"))
    result = satchel.evaluate(path, table, "species", baseline=holder, resamples=200,
                              dataset_name="holdout")
    gov.attach_results("iris", version, result)


def test_request_approve_moves_the_alias_with_every_step_audited(
        governed: Governance, table: pd.DataFrame) -> None:
    reg = governed.registry
    with pytest.raises(PolicyError, match="'champion' of 'iris' is protected"):
        reg.set_alias("iris", "champion", 2)
    with pytest.raises(PolicyError, match="cannot be deleted directly"):
        reg.delete_alias("iris", "champion")
    assert reg.get_version_by_alias("iris", "champion").version == 1
    _evaluate(governed, 2, table)
    req = governed.request("iris", "champion", 2)
    assert req.state == "pending" and req.gates_passed and req.holder == 1, req.gates
    assert {g.gate for g in req.gates} >= {"dataset", "metric accuracy",
                                           "no significant regression",
                                           "signature compatible", "validate", "model card"}
    with pytest.raises(PolicyError, match="another approver must approve it"):
        governed.approve(req.id)
    with pytest.raises(PolicyError, match="'carol' is not an approver"):
        _as(governed, "carol").approve(req.id)
    assert reg.get_version_by_alias("iris", "champion").version == 1
    done = _as(governed, "bob").approve(req.id, reason="better on holdout")
    assert done.state == "approved" and done.decided_by == "bob"
    assert reg.get_version_by_alias("iris", "champion").version == 2
    actions = [(e.action, e.actor) for e in reg.audit("iris")]
    tail = actions[actions.index(("request_promotion", "alice")):]
    assert tail == [("request_promotion", "alice"), ("approve_request", "bob"),
                    ("set_alias", "bob")]
    assert ("set_policy", "alice") in actions and ("attach_evaluation", "alice") in actions
    assert reg.verify_audit("iris").ok
    with pytest.raises(PolicyError, match="is approved; only a pending request"):
        _as(governed, "bob").approve(req.id)


def test_failed_gates_name_their_figures_and_only_an_admin_overrides(
        governed: Governance, table: pd.DataFrame) -> None:
    reg = governed.registry
    _evaluate(governed, 3, table)
    req = governed.request("iris", "champion", 3)
    assert req.state == "gates_failed"
    failed = {g.gate: g.detail for g in req.gates if not g.passed}
    assert "accuracy 0.3333 < 0.9" in failed["metric accuracy"]
    assert "significantly worse" in failed["no significant regression"]
    assert "lacks ['owner', 'intended_use', 'training_data']" in failed["model card"]
    with pytest.raises(PolicyError, match="failed its gates") as info:
        _as(governed, "bob").approve(req.id)
    assert "metric accuracy" in info.value.checks
    with pytest.raises(PolicyError, match="only an admin"):
        _as(governed, "bob").approve(req.id, override=True)
    assert reg.get_version_by_alias("iris", "champion").version == 1
    before = len(reg.audit("iris"))
    done = _as(governed, "root").approve(req.id, override=True, reason="incident fix")
    assert done.state == "approved" and done.override
    assert reg.get_version_by_alias("iris", "champion").version == 3
    new = [(e.action, e.actor) for e in reg.audit("iris")[before:]]
    assert new == [("override_gates", "root"), ("approve_request", "root"),
                   ("set_alias", "root")]
    assert reg.verify_audit("iris").ok


def test_reject_needs_a_reason_and_an_approver(governed: Governance,
                                               table: pd.DataFrame) -> None:
    _evaluate(governed, 2, table)
    req = governed.request("iris", "champion", 2)
    with pytest.raises(RegistryInputError, match="needs a reason"):
        _as(governed, "bob").reject(req.id, " ")
    with pytest.raises(PolicyError, match="not an approver"):
        _as(governed, "carol").reject(req.id, "no")
    done = _as(governed, "bob").reject(req.id, "wait for the quarterly data")
    assert done.state == "rejected" and done.reason == "wait for the quarterly data"
    with pytest.raises(PolicyError, match="is rejected"):
        _as(governed, "bob").approve(req.id)
    assert governed.registry.get_version_by_alias("iris", "champion").version == 1
    assert [r.id for r in governed.requests("iris", state="rejected")] == [req.id]


def test_missing_evaluation_and_unprotected_targets(governed: Governance) -> None:
    req = governed.request("iris", "champion", 2)
    gate = next(g for g in req.gates if g.gate == "evaluation")
    assert not gate.passed and "--register-results" in gate.detail
    with pytest.raises(RegistryInputError, match="'challenger' of 'iris' is not protected"):
        governed.request("iris", "challenger", 2)
    governed.registry.set_alias("iris", "challenger", 2)  # unprotected: moves directly
    with pytest.raises(Exception, match="already points at version 1"):
        governed.request("iris", "champion", 1)


def test_stage_protection(governed: Governance) -> None:
    reg = governed.registry
    reg.set_stage("iris", 1, "Staging")
    with pytest.raises(PolicyError, match="stage 'Production' of 'iris' is protected"):
        reg.set_stage("iris", 1, "Production")
    relaxed = POLICY.replace("evaluation:\n  dataset: holdout\n  metrics: {accuracy: {min: 0.9}}"
                             "\n  no_significant_regression: true\n", "")
    governed.set_policy("iris", relaxed)
    req = governed.request("iris", "Production", 1, stage=True)
    assert req.state == "pending", req.gates
    _as(governed, "bob").approve(req.id)
    assert reg.get_version("iris", 1).stage == "Production"


def test_bad_policies_are_refused_and_nothing_is_stored(registry: Any,
                                                       iris_model_dir: Path) -> None:
    registry.register(iris_model_dir, "iris")
    gov = Governance(registry)
    before = len(registry.audit("iris"))
    bad = [
        ("protect: {aliases: [champion]}\nevaluation: {metrics: {acc: {min: 1}}}\n",
         "unknown metric 'acc'"),
        ("protect: {stages: [Live]}\n", "unknown stage"),
        ("approvers: [bob]\n", "protects at least one|protect names no"),
        ("protect: {aliases: champion}\nvalidate: yes please\n", "validate must be true or false"),
        ("protect: [champion]\n", "protect must be a mapping"),
        ("protect: {aliases: [champion]}\nreviewers: [bob]\n", r"unknown key\(s\) \['reviewers'\]"),
        ("protect: {aliases: [champion\n", "not valid YAML"),
    ]
    for text, message in bad:
        with pytest.raises(PolicyFormatError, match=message):
            gov.set_policy("iris", text)
    assert gov.get_policy("iris") is None
    assert len(registry.audit("iris")) == before
    with pytest.raises(Exception, match="no registered model named 'nope'"):
        gov.set_policy("nope", POLICY)


def test_results_attach_only_to_the_model_they_measured(governed: Governance,
                                                        table: pd.DataFrame,
                                                        iris_model_dir: Path) -> None:
    result = satchel.evaluate(iris_model_dir, table, "species", resamples=0)
    # iris_model_dir is version 2; version 1 is another model
    with pytest.raises(Exception, match="evaluate that version"):
        governed.attach_results("iris", 1, result)
    assert governed.results("iris", 1) == []
    with pytest.raises(Exception, match="no registered model named 'nope'|version"):
        governed.attach_results("nope", 1, result)
    assert governed.attach_results("iris", 2, result) > 0
    assert [r.model.model_uuid for r in governed.results("iris", 2)] == [
        result.model.model_uuid]


def test_bias_signature_and_validate_gates_fail_with_their_figures(
        registry: Any, iris_model_dir_2: Path, iris: tuple[Any, Any], tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    # the candidate needs an input the champion's clients never send
    wider = X.assign(extra=1.0)
    cand = tmp_path / "wider"
    satchel.save_model(LogisticRegression(max_iter=500).fit(wider, y), cand,
                       input_example=wider.head(3))
    registry.register(iris_model_dir_2, "iris")
    registry.register(cand, "iris")
    registry.set_alias("iris", "champion", 1)
    gov = Governance(registry)
    gov.set_policy("iris", """
protect: {aliases: [champion]}
approvers: [bob]
evaluation:
  dataset: holdout
  bias: {max_gap: {accuracy: 0.001}, min_selection_rate_ratio: 0.999}
signature_compatible: true
validate: true
""")
    sites = np.array(["a", "b", "c"])[np.arange(len(X)) % 3]
    table = wider.assign(species=y.to_numpy(), site=sites)
    v2 = registry.get_version("iris", 2)
    result = satchel.evaluate(registry.local_path(v2), table, "species", slice_by=["site"],
                              resamples=50, dataset_name="holdout")
    gov.attach_results("iris", 2, result)
    # the stored files no longer match their digests: validate must say so
    pkl = registry.local_path(v2) / "model.pkl"
    pkl.chmod(0o644)
    pkl.write_bytes(pkl.read_bytes() + b"tampered")
    req = gov.request("iris", "champion", 2)
    assert req.state == "gates_failed"
    failed = {g.gate: g.detail for g in req.gates if not g.passed}
    gap = next(b for b in result.bias if b.kind == "gap" and b.metric == "accuracy")
    assert gap.value > 0.001
    assert f"{gap.value:.4g}" in failed["bias gap accuracy"]
    assert "selection rate ratio" in failed
    assert "new required input 'extra' (double)" in failed["signature compatible"]
    assert "model.pkl" in failed["validate"]
    with pytest.raises(PolicyError, match="failed its gates"):
        Governance(registry.with_actor("bob")).approve(req.id)
    assert registry.get_version_by_alias("iris", "champion").version == 1
