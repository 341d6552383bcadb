"""deploy/: the alerting rules and the dashboard parse, and name only series the code defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest
import yaml

from portability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bportability_[a-z_]+\b")
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def exposed_names() -> set[str]:
    """Every sample name a registry of ours can expose."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def rules() -> list[dict]:
    document = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    document = json.loads((ROOT / "deploy/grafana/portability.json").read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_alert_parses_and_names_only_series_the_registry_exposes(rule):
    promql_parser.parse(rule["expr"])
    names = set(NAME.findall(rule["expr"]))
    assert names, f"{rule['alert']} watches none of our series"
    assert names - exposed_names() == set()


def test_every_alert_has_a_runbook_section_in_the_operators_guide():
    guide = (ROOT / "docs/operations.md").read_text()
    missing = [rule["alert"] for rule in rules() if f"### {rule['alert']}" not in guide]
    assert missing == []


@pytest.mark.parametrize("expr", dashboard_queries())
def test_every_dashboard_query_parses_and_names_existing_series(expr):
    promql_parser.parse(expr)
    assert set(NAME.findall(expr)) - exposed_names() == set()


def test_the_dashboard_shows_every_series_the_registry_defines():
    shown = {name for expr in dashboard_queries() for name in NAME.findall(expr)}
    families = {family.name for family in Metrics().registry.collect()}
    unshown = {f for f in families if not any(name.startswith(f) for name in shown)}
    assert unshown == set()
