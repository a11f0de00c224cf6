"""The Kubernetes manifests, rendered offline with `kubectl kustomize` and validated strictly: built-in kinds against
the Kubernetes API's schemas (kubernetes-validate --strict), KEDA's ScaledObject and the PrometheusRule against their
vendored CRD schemas; then what each object must say (probes, budgets, who may reach Postgres, KEDA's threshold)."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES = "1.32.0"  # the oldest API the manifests promise (lifecycle.preStop.sleep is GA in 1.32)
SERVICES = {"gateway": 8700, "realtime": 8701, "artifacts": 8702, "scheduler": 8703, "worker": 8704}
Obj = dict[str, Any]


@functools.cache
def render(overlay: str) -> list[Obj]:
    """The overlay's objects (shared between tests: copy before changing one)."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is needed to render infra/k8s (./dev test installs it: ensure_kubectl)"
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return render(request.param)


def crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) → the strict JSON Schema of each vendored CRD version."""
    schemas: dict[tuple[str, str], Obj] = {}
    for path in sorted((K8S / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema: Any) -> Any:
    """An OpenAPI v3 schema where an object with listed properties admits no others (as the API server prunes and
    `kubectl apply --validate=strict` refuses them), unless it says it keeps unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        out["properties"] = {name: strict(s) for name, s in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


CRDS = crd_schemas()


def validate(obj: Obj) -> None:
    """Raise when `obj` has an unknown or mistyped field."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRDS:
        schema = copy.deepcopy(CRDS[key])
        schema["properties"]["metadata"] = {"type": "object"}  # the API server's ObjectMeta, checked below
        jsonschema.Draft7Validator(schema).validate(obj)
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]},
                                     KUBERNETES, strict=True)
        return
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(deployment: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


# --- every object is valid -------------------------------------------------------------------------------------------


def test_every_rendered_object_validates_strictly(objects: list[Obj]) -> None:
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler",
            "ScaledObject", "PrometheusRule", "ConfigMap", "Namespace"} <= kinds
    for obj in objects:
        validate(obj)


def wrong(obj: Obj, path: str, value: Any) -> Obj:
    """A copy of `obj` with `value` set at the dotted `path` (a number indexes a list)."""
    bad = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = bad
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return bad


@pytest.mark.parametrize(("kind", "name", "path", "value"), [
    ("Deployment", "gateway", "spec.template.spec.containers.0.readinessProbe.httpGet.paht", "/readyz"),
    ("Deployment", "gateway", "spec.replicas", "two"),
    ("Deployment", "worker", "spec.template.spec.containers.0.resources.limit", {"cpu": "1"}),
    ("NetworkPolicy", "nats-clients", "spec.egress.0.port", 4222),
    ("PodDisruptionBudget", "gateway", "spec.maxUnavailible", 1),
    ("ScaledObject", "worker", "spec.minReplicas", 1),
    ("ScaledObject", "worker", "spec.minReplicaCount", "one"),
    ("ScaledObject", "worker", "spec.triggers.0.metdata", {}),
    ("PrometheusRule", "xrunner", "spec.groups.0.rules.5.expresion", "up == 0"),
    ("HorizontalPodAutoscaler", "realtime", "spec.minReplica", 2),
])
def test_a_wrong_or_mistyped_field_fails_validation(kind: str, name: str, path: str, value: Any) -> None:
    good = by_kind(render("prod"), kind)[name]
    validate(good)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(wrong(good, path, value))


# --- what each object must say ----------------------------------------------------------------------------------------


def test_every_service_has_a_deployment_with_its_image_probes_resources_and_a_safe_rollout(objects: list[Obj]) -> None:
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, port in SERVICES.items():
        d, c = deployments[name], container(deployments[name])
        assert c["image"].startswith(f"xrunner/{name}:"), c["image"]
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
        assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert c["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_every_deployment_has_a_disruption_budget_that_selects_it(objects: list[Obj]) -> None:
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name, d in by_kind(objects, "Deployment").items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_autoscaled_deployments_pin_no_replica_count(objects: list[Obj]) -> None:
    deployments = by_kind(objects, "Deployment")
    assert "replicas" not in deployments["worker"]["spec"]  # KEDA's
    assert "replicas" not in deployments["realtime"]["spec"]  # the HPA's
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["realtime"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "realtime"}


def test_keda_scales_workers_on_their_durable_consumer_one_pod_per_slots(objects: list[Obj]) -> None:
    worker = by_kind(objects, "Deployment")["worker"]
    scaled = by_kind(objects, "ScaledObject")["worker"]
    slots, pool = env(worker)["XR_WORKER_SLOTS"]["value"], env(worker)["XR_WORKER_POOL"]["value"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker"
    assert scaled["spec"]["minReplicaCount"] >= 1
    triggers = {t["type"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    nats = triggers["nats-jetstream"]
    assert (nats["stream"], nats["consumer"], nats["lagThreshold"]) == ("XR_RUN", f"worker_{pool}", slots)
    assert nats["natsServerMonitoringEndpoint"].startswith("nats-headless.")
    assert triggers["prometheus"]["threshold"] == slots
    assert f'pool="{pool}"' in triggers["prometheus"]["query"]


def reachable(objects: list[Obj], deployment: Obj) -> set[tuple[str, int]]:
    """(namespace or CIDR, port) pairs the deployment's pods may open, as the NetworkPolicies that select them say."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    allowed: set[tuple[str, int]] = set()
    for policy in by_kind(objects, "NetworkPolicy").values():
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress", []):
            for peer in rule["to"]:
                where = (peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                         or peer.get("ipBlock", {}).get("cidr", "?"))
                allowed |= {(where, p["port"]) for p in rule["ports"]}
    return allowed


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    expressions = selector.get("matchExpressions", [])
    assert all(e["operator"] == "In" for e in expressions)
    return all(labels.get(e["key"]) in e["values"] for e in expressions)


DNS = {("kube-system", 53)}
NATS, POSTGRES, S3 = ("nats", 4222), ("postgres", 5432), ("0.0.0.0/0", 443)


@pytest.mark.parametrize(("service", "needs"), [
    ("gateway", {NATS, POSTGRES}),
    ("scheduler", {NATS, POSTGRES}),
    ("artifacts", {NATS, POSTGRES, S3}),
    ("worker", {NATS, S3}),
    ("realtime", {NATS}),
])
def test_network_policies_let_each_service_reach_only_what_it_needs(service: str, needs: set[tuple[str, int]]) -> None:
    for overlay in OVERLAYS:
        objects = render(overlay)
        assert by_kind(objects, "NetworkPolicy")["default-deny"]["spec"] == {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert reachable(objects, by_kind(objects, "Deployment")[service]) == needs | DNS


def test_every_secret_a_pod_reads_is_generated_in_the_dev_overlay() -> None:
    objects = render("dev")
    secrets = {name: set(s["data"]) for name, s in by_kind(objects, "Secret").items()}
    for d in by_kind(objects, "Deployment").values():
        for e in container(d).get("env", []):
            if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                assert ref["key"] in secrets[ref["name"]], (d["metadata"]["name"], ref)
        for volume in d["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                wanted = {item["key"] for item in volume["secret"]["items"]}
                assert wanted <= secrets[volume["secret"]["secretName"]]


def test_prod_generates_no_secrets_and_dev_generates_no_real_ones() -> None:
    assert by_kind(render("prod"), "Secret") == {}
    for secret in by_kind(render("dev"), "Secret").values():
        assert secret["metadata"]["namespace"] == "xrunner-dev"


def test_the_prometheus_rule_is_the_checked_alerts_file() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("prometheusrule", ROOT / "infra" / "prometheus" / "prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (K8S / "base" / "prometheusrule.yaml").read_text()
    assert committed == module.rendered(), "run: .venv/bin/python infra/prometheus/prometheusrule.py"


def iter_nats_values() -> Iterator[Obj]:
    yield yaml.safe_load((K8S / "nats" / "values.yaml").read_text())


def test_the_nats_chart_values_run_a_three_node_jetstream_cluster_on_stable_storage() -> None:
    for values in iter_nats_values():
        assert values["config"]["cluster"]["enabled"] is True
        assert values["config"]["cluster"]["replicas"] == 3
        assert values["config"]["jetstream"]["fileStore"]["pvc"]["enabled"] is True
