"""The Prometheus alert rules and the Grafana dashboard: promtool checks and unit-tests the rules, every metric they
(and KEDA's query) read is one the services export, every alert has a runbook, and the dashboard parses."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "infra" / "grafana" / "xrunner.json"
# Every module that declares a metric the services serve.
METRIC_MODULES = (
    "xrunner.servicekit.http", "xrunner.servicekit.projector", "xrunner.servicekit.consumer",
    "xrunner.scheduler.metrics", "xrunner.scheduler.app", "xrunner.scheduler.workers",
    "xrunner.worker.app", "xrunner.worker.runner", "xrunner.realtime.hub", "xrunner.artifacts.metrics",
)
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created"), "info": ("_info",)}
METRIC = re.compile(r"\bxrunner_[a-z0-9_]+")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe is not None, "promtool is needed (./dev test installs it: ensure_promtool)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def exported() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "sum by (pool (xrunner_jobs_running)"}]}]}
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert promtool("check", "rules", tmp_path / "broken.yml").returncode != 0


def test_the_alerts_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", RULES.parent / "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load((RULES.parent / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert {r["alert"] for r in rules() if "alert" in r} == tested


def test_the_rules_the_dashboard_and_kedas_query_read_only_exported_metrics() -> None:
    names = exported()
    keda = (ROOT / "infra" / "k8s" / "base" / "worker.yaml").read_text()
    for source in (RULES.read_text(), DASHBOARD.read_text(), keda):
        used = set(METRIC.findall(source))
        assert used, "no xrunner metric found"
        assert used <= names, sorted(used - names)


def test_every_alert_has_a_runbook_under_alerts_in_the_operations_doc() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    alerts_section = doc.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    headings = {line[4:].strip().lower() for line in alerts_section.splitlines() if line.startswith("### ")}
    for rule in rules():
        if "alert" in rule:
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor in headings, f"docs/operations.md needs '### {rule['alert']}' under '## Alerts'"


@pytest.mark.parametrize("title", ["Running jobs", "Queued jobs", "Oldest waiting job",
                                   "Dispatch latency (queued → started)", "In flight per tenant",
                                   "Workers and free slots"])
def test_the_dashboard_shows_the_seeds_gauges(title: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = {p["title"].split(" (needs")[0]: p for p in dashboard["panels"]}
    assert title in panels
    assert all(t["expr"] for t in panels[title]["targets"])
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
