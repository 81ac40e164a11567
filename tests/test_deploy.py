"""deploy/: the Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate)
and keep the promises docs/deploy.md makes; compose and the image require API keys.
Docker is not run here: the files are read and checked."""

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import msgspec
import pytest
import yaml

from spool.shared.settings import Settings
from spool.worker import metrics as worker_metrics

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
SETTINGS = {f"SPOOL_{f.name.upper()}" for f in msgspec.structs.fields(Settings)}


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (first,) = deployment["spec"]["template"]["spec"]["containers"]
    return first


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_existing_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource


def test_api_probes_keys_and_service() -> None:
    api = container(one("Deployment", "spool-api"))
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--allow-open" not in api["command"]
    assert env(api)["SPOOL_API_KEYS"] == {"secretKeyRef": {"name": "spool", "key": "api-keys"}}
    service = one("Service", "spool-api")
    labels = one("Deployment", "spool-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_worker_outlives_its_stop_grace_and_serves_metrics() -> None:
    deployment = one("Deployment", "spool-worker")
    worker = container(deployment)
    variables = env(worker)
    grace = float(variables.get("SPOOL_SHUTDOWN_GRACE_S", Settings().shutdown_grace_s))
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace
    port = int(variables["SPOOL_WORKER_METRICS_PORT"])
    assert variables["SPOOL_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/metrics"
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports[worker["livenessProbe"]["httpGet"]["port"]] == port


def test_hpa_scales_workers_on_a_metric_the_worker_serves() -> None:
    hpa = one("HorizontalPodAutoscaler", "spool-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "spool-worker"
    (metric,) = hpa["spec"]["metrics"]
    name = metric["external"]["metric"]["name"]
    served = {m.name for m in worker_metrics.REGISTRY.collect()}
    assert name in served
    rules = yaml.safe_load(
        one("ConfigMap", "prometheus-adapter-spool-rules")["data"]["config.yaml"]
    )
    assert [r["name"]["as"] for r in rules["externalRules"]] == [name]


def test_every_spool_variable_in_deploy_is_a_setting() -> None:
    text = "".join(p.read_text() for p in [*K8S.glob("*.yaml"), DEPLOY / "compose.yaml"])
    used = set(re.findall(r"\bSPOOL_[A-Z_]+\b", text))
    assert used
    assert used <= SETTINGS, used - SETTINGS


def test_compose_requires_keys_and_publishes_on_loopback() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    api = services["api"]
    assert "--allow-open" not in api["command"]
    assert api["environment"]["SPOOL_API_KEYS"].startswith("${SPOOL_API_KEYS:?")
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    worker = services["worker"]
    grace = float(worker["environment"].get("SPOOL_SHUTDOWN_GRACE_S", 30))
    assert int(worker["stop_grace_period"].rstrip("s")) > grace


def test_image_is_closed_by_default_and_installs_no_dev_extras() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "--allow-open" not in dockerfile
    assert "RUN pip install ./clients/python .\n" in dockerfile
    assert "[dev]" not in dockerfile
