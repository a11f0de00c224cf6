"""Writes infra/k8s/base/prometheusrule.yaml: the groups of alerts.yml as a Prometheus Operator `PrometheusRule`, so
the rules promtool checks are the rules a cluster loads. Run it after editing alerts.yml (a test checks it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"
HEADER = "# Generated from infra/prometheus/alerts.yml by infra/prometheus/prometheusrule.py: do not edit.\n"


def rendered() -> str:
    groups: dict[str, Any] = yaml.safe_load((HERE / "alerts.yml").read_text())
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "xrunner", "labels": {"app.kubernetes.io/name": "xrunner"}},
        "spec": groups,
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=120)


if __name__ == "__main__":
    TARGET.write_text(rendered())
    sys.stdout.write(f"wrote {TARGET}\n")
