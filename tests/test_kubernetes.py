"""deploy/k8s checked against the Kubernetes API schemas, offline.

kubernetes-validate bundles the JSON schemas of each Kubernetes release; strict validation also
refuses fields the API does not know, so a misspelt key fails here instead of at `kubectl apply`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "k8s"

# The oldest release the manifests are meant for, and the newest the package knows (an API
# removed since 1.30 fails there).
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def _manifests() -> list[Path]:
    return sorted([*K8S_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yml")])


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def schema_errors(document: dict[str, Any], version: str) -> str | None:
    """Why ``document`` is not a valid object of Kubernetes ``version``; None when it is."""
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return str(error).splitlines()[0]
    except kubernetes_validate.SchemaNotFoundError:
        return f"Kubernetes {version} has no {document.get('apiVersion')} {document.get('kind')}"
    return None


def test_every_manifest_file_is_validated() -> None:
    names = {path.name for path in _manifests()}
    # The secret template too: a placeholder Secret must still be one.
    assert {"namespace.yaml", "configmap.yaml", "secret.template.yaml", "migrate-job.yaml"} <= names


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", _manifests(), ids=lambda path: path.name)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    documents = _documents(path)
    assert documents, f"{path.name} is empty"
    errors = {
        f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}": error
        for doc in documents
        if (error := schema_errors(doc, version)) is not None
    }
    assert not errors, f"{path.name} (Kubernetes {version}): {errors}"


def _deployment() -> dict[str, Any]:
    (deployment,) = [doc for doc in _documents(K8S_DIR / "case-api.yaml") if doc["kind"] == "Deployment"]
    return deployment


def _broken(change: str) -> dict[str, Any]:
    document = copy.deepcopy(_deployment())
    spec = document["spec"]
    container = spec["template"]["spec"]["containers"][0]
    if change == "wrong type":
        spec["revisionHistoryLimit"] = "five"
    elif change == "misspelt field":
        container["readinessprobe"] = container.pop("readinessProbe")
    elif change == "missing required field":
        del container["name"]
    elif change == "unknown kind":
        document["apiVersion"] = "apps/v1beta9"
    return document


@pytest.mark.parametrize("change", ["wrong type", "misspelt field", "missing required field", "unknown kind"])
def test_a_broken_manifest_is_refused(change: str) -> None:
    assert schema_errors(_deployment(), KUBERNETES_VERSIONS[0]) is None
    assert schema_errors(_broken(change), KUBERNETES_VERSIONS[0]) is not None


# --- scaling -------------------------------------------------------------------------------


def _all_documents() -> list[dict[str, Any]]:
    return [doc for path in _manifests() for doc in _documents(path)]


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in _all_documents() if doc["kind"] == kind}


@pytest.mark.parametrize("name", ["case-api", "agreement-api", "notify-worker"])
def test_every_deployment_scales_on_cpu_against_its_requests(name: str) -> None:
    deployment = _of_kind("Deployment")[name]
    autoscalers = [
        doc
        for doc in _of_kind("HorizontalPodAutoscaler").values()
        if doc["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    ]
    assert len(autoscalers) == 1, f"{name}: expected one HorizontalPodAutoscaler"
    (autoscaler,) = autoscalers
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    spec = autoscaler["spec"]
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
    # A count in the Deployment would reset the autoscaler's on every apply.
    assert "replicas" not in deployment["spec"]
    cpu_targets = [
        metric["resource"]["target"]
        for metric in spec["metrics"]
        if metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    ]
    assert [target["type"] for target in cpu_targets] == ["Utilization"]
    # Utilization is measured against the request: without one the autoscaler cannot compute it.
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert container["resources"]["requests"]["cpu"], f"{name}/{container['name']} has no CPU request"
    # A drain must be able to evict one pod at the minimum.
    budget = _of_kind("PodDisruptionBudget")[name]["spec"]
    assert budget["minAvailable"] < spec["minReplicas"]
