"""deploy/k8s checked against the Kubernetes API schemas, offline.

kubernetes-validate bundles the JSON schemas of each Kubernetes release; strict validation also
refuses fields the API does not know, so a misspelt key fails here instead of at `kubectl apply`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from shared.settings import REPO_ROOT
from tilbake.cli import settings_classes

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
SETTINGS_PORTS = {name: cls.model_fields["port"].default for name, cls in settings_classes()}

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


@functools.cache
def _all_documents() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in _manifests() for doc in _documents(path))


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


# --- network policies ----------------------------------------------------------------------
# A small evaluator of the manifests' NetworkPolicies: which rules let a pod of the namespace
# open, or take, a connection on a port. Enough for the selectors used here (matchLabels and
# matchExpressions with In), not a full implementation.

NAMESPACE = "tilbake"


def _pods() -> dict[str, dict[str, Any]]:
    """Workload name -> its pod template (Deployments and the migrate Job)."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]
        for doc in _all_documents()
        if doc["kind"] in ("Deployment", "Job")
    }


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "the evaluator knows only In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _port_matches(rule: dict[str, Any], port: int, pod: dict[str, Any]) -> bool:
    if not rule.get("ports"):
        return True
    named = {
        entry["name"]: entry["containerPort"]
        for container in pod["spec"]["containers"]
        for entry in container.get("ports", [])
        if "name" in entry
    }
    return any(
        entry.get("protocol", "TCP") == "TCP" and named.get(entry["port"], entry["port"]) == port
        for entry in rule["ports"]
    )


def _rules(workload: str, direction: str, port: int) -> list[list[dict[str, Any]]]:
    """The peers (`to` or `from` lists) of every rule that lets ``workload`` connect (egress) or be
    connected to (ingress) on TCP ``port``."""
    pod = _pods()[workload]
    policy_type, key, peers = {
        "egress": ("Egress", "egress", "to"),
        "ingress": ("Ingress", "ingress", "from"),
    }[direction]
    found = []
    for policy in _of_kind("NetworkPolicy").values():
        spec = policy["spec"]
        if policy_type in spec["policyTypes"] and _selects(spec["podSelector"], pod["metadata"]["labels"]):
            found.extend(rule.get(peers, []) for rule in spec.get(key, []) if _port_matches(rule, port, pod))
    return found


def _allows_pod(rules: list[list[dict[str, Any]]], workload: str) -> bool:
    """Some rule names pods of ``workload`` in this namespace."""
    labels = _pods()[workload]["metadata"]["labels"]
    return any(
        "namespaceSelector" not in peer and "podSelector" in peer and _selects(peer["podSelector"], labels)
        for peers in rules
        for peer in peers
    )


def _allows_namespace(
    rules: list[list[dict[str, Any]]],
    namespace_labels: dict[str, str],
    pod_labels: dict[str, str] | None = None,
) -> bool:
    """Some rule names that namespace (and, when given, pods with ``pod_labels`` in it)."""
    return any(
        "namespaceSelector" in peer
        and _selects(peer["namespaceSelector"], namespace_labels)
        and (pod_labels is None or _selects(peer.get("podSelector", {}), pod_labels))
        for peers in rules
        for peer in peers
    )


def _allows_addresses(rules: list[list[dict[str, Any]]]) -> bool:
    return any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for peers in rules for peer in peers)


def _calls() -> set[tuple[str, str, int]]:
    """(caller, callee, port) from each ConfigMap value naming another service inside the cluster."""
    found = set()
    for config in _of_kind("ConfigMap").values():
        caller = config["metadata"]["labels"]["app.kubernetes.io/name"]
        for value in config.get("data", {}).values():
            url = urlsplit(str(value))
            if url.hostname and url.hostname.endswith(f".{NAMESPACE}.svc.cluster.local"):
                found.add((caller, url.hostname.split(".")[0], url.port or 80))
    return found


def _secret_urls(variable_suffix: str) -> set[tuple[str, int]]:
    """(workload, port) of each connection URL in the Secret template ending in ``variable_suffix``."""
    found = set()
    for secret in _of_kind("Secret").values():
        workload = secret["metadata"]["labels"]["app.kubernetes.io/name"]
        for variable, value in secret.get("stringData", {}).items():
            if variable.endswith(variable_suffix):
                port = urlsplit(value).port
                assert port, f"{variable} in the Secret template names no port"
                found.add((workload, port))
    return found


def test_everything_is_denied_unless_allowed() -> None:
    policies = _of_kind("NetworkPolicy")
    assert all(policy["metadata"]["namespace"] == NAMESPACE for policy in policies.values())
    deny = [
        policy["spec"]
        for policy in policies.values()
        if policy["spec"]["podSelector"] == {}
        and "ingress" not in policy["spec"]
        and "egress" not in policy["spec"]
    ]
    assert deny, "no default-deny policy"
    assert any(set(spec["policyTypes"]) == {"Ingress", "Egress"} for spec in deny)
    # No rule opens a pod to everyone: each names who may connect.
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{name}: an ingress rule without `from` admits anyone"


@pytest.mark.parametrize("name", ["case-api", "agreement-api", "notify-worker"])
def test_the_ingress_controller_reaches_each_service(name: str) -> None:
    # notify-worker's too: recipients POST their receipts to it.
    port = SETTINGS_PORTS[name]
    rules = _rules(name, "ingress", port)
    assert _allows_namespace(rules, {"kubernetes.io/metadata.name": "ingress-nginx"})


def test_every_call_between_services_is_allowed_both_ways() -> None:
    calls = _calls()
    assert ("case-api", "agreement-api", 8002) in calls
    assert {("notify-worker", "case-api", 8001), ("notify-worker", "agreement-api", 8002)} <= calls
    for caller, callee, port in calls:
        assert _allows_pod(_rules(caller, "egress", port), callee), f"{caller} may not open {callee}:{port}"
        assert _allows_pod(_rules(callee, "ingress", port), caller), f"{callee} refuses {caller} on {port}"


def test_each_pod_reaches_dns_and_the_backing_services_it_is_given() -> None:
    databases, brokers = _secret_urls("DATABASE_URL"), _secret_urls("AMQP_URL")
    assert {workload for workload, _port in databases} == {
        "case-api",
        "agreement-api",
        "notify-worker",
        "migrate",
    }
    assert {workload for workload, _port in brokers} == {"case-api", "agreement-api", "notify-worker"}
    for workload, port in databases | brokers:
        rules = _rules(workload, "egress", port)
        assert any("namespaceSelector" in peer or "ipBlock" in peer for peers in rules for peer in peers), (
            f"{workload} may not open port {port}"
        )
    for workload in _pods():
        dns = _rules(workload, "egress", 53)
        assert _allows_namespace(dns, {"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})


def test_notify_worker_sends_webhooks_to_public_addresses_only() -> None:
    rules = _rules("notify-worker", "egress", 443)
    assert _allows_addresses(rules)
    blocks = [peer["ipBlock"] for peers in rules for peer in peers if "ipBlock" in peer]
    assert all(
        {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(block.get("except", [])) for block in blocks
    )
    # The migrate Job opens nothing but PostgreSQL and DNS.
    assert not _rules("migrate", "egress", 443)
