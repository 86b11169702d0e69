"""docs/prometheus-drift-alerts.yml: valid rules that name gauges the server exports, with
the issue's threshold (PSI > 0.2 for 15 minutes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from satchel.serving.monitoring.exposition import _GAUGES

RULES = Path(__file__).resolve().parents[3] / "docs" / "prometheus-drift-alerts.yml"


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    assert isinstance(doc, dict) and list(doc) == ["groups"]
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert rules
    return rules


def test_every_rule_has_the_fields_prometheus_requires() -> None:
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z_]\w*", rule["alert"])
        expr = rule["expr"]
        assert isinstance(expr, str) and expr.strip()
        assert re.fullmatch(r"\d+[smh]", str(rule["for"]))
        # brackets and quotes balance (a broken PromQL expression fails to load)
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
        assert expr.count('"') % 2 == 0


def test_psi_over_point_two_for_fifteen_minutes_alerts() -> None:
    psi = [r for r in _rules() if "satchel_drift_psi" in r["expr"]]
    sides = set()
    for rule in psi:
        side = re.search(r'side="(\w+)"', rule["expr"])
        assert side is not None
        sides.add(side.group(1))
        assert re.search(r">\s*0\.2\b", rule["expr"]) and rule["for"] == "15m"
    assert sides == {"input", "output"}


def test_rules_name_only_metrics_and_labels_the_server_exports() -> None:
    exported = {family for family, _, _ in _GAUGES}
    for rule in _rules():
        expr = rule["expr"]
        names = set(re.findall(r"\b(satchel_\w+)", expr))
        assert names and names <= exported, names - exported
        labels = re.findall(r"(\w+)\s*=~?\s*\"", expr)
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels += [part.strip() for part in group.split(",")]
        assert labels and set(labels) <= {"model", "column", "side"}, labels
