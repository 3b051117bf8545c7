"""Every setting a deployment on several hosts needs is set by docker-compose.yml and deploy/k8s.

The settings are not listed here: they are read from the settings classes, whose fields carry a
``deploy`` marker (:func:`shared.settings.deploy`). Compose, a dev stack whose services run in
separate containers, must set the peer, public and backing ones; Kubernetes all of them, the
backing and secret ones from a Secret and never from a ConfigMap (deploy/README.md, "Settings a
deployment must set"). The checks take the parsed documents, so the tests below also run them on
copies with a setting taken out.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
import yaml
from aiormq.exceptions import ChannelPreconditionFailed

from shared.bus import create_bus
from shared.events import EventEnvelope
from shared.settings import ServiceSettings
from tests.infra import RabbitMQ, unique_name
from tests.test_compose import COMPOSE_FILE, K8S_DIR, _environment, _prefix
from tilbake.cli import settings_classes

SETTINGS = dict(settings_classes())
NAMESPACE = "tilbake"

# What each place must carry, by marker.
COMPOSE_ROLES = frozenset({"peer", "public", "backing"})
SECRET_ROLES = frozenset({"backing", "secret"})


@dataclass(frozen=True)
class Needed:
    """A setting of ``service`` that a deployment on several hosts must set."""

    service: str
    field: str
    variable: str
    role: str
    one_of: str | None  # of the settings sharing this group, one is enough

    @property
    def peer(self) -> str:
        """The service a peer URL points at: ``agreement_api_url`` -> ``agreement-api``."""
        return self.field.removesuffix("_url").replace("_", "-")

    @property
    def port(self) -> int:
        return int(SETTINGS[self.peer].model_fields["port"].default)


def needed(service: str) -> list[Needed]:
    cls = SETTINGS[service]
    found = []
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and "deploy" in extra:
            one_of = extra.get("one_of")
            found.append(
                Needed(
                    service,
                    name,
                    f"{_prefix(cls)}{name.upper()}",
                    str(extra["deploy"]),
                    None if one_of is None else str(one_of),
                )
            )
    return found


def _missing(wanted: list[Needed], present: set[str]) -> list[str]:
    """The wanted settings not present, as ``VARIABLE (role)``; a group, present when one of it
    is, as ``A or B (role)``."""
    missing: dict[str, list[Needed]] = {}
    for item in wanted:
        missing.setdefault(item.one_of or item.variable, []).append(item)
    return [
        f"{' or '.join(item.variable for item in items)} ({items[0].role})"
        for items in missing.values()
        if not any(item.variable in present for item in items)
    ]


# --- the checks ----------------------------------------------------------------------------


def compose_problems(services: dict[str, Any]) -> list[str]:
    """What docker-compose.yml (its ``services`` mapping) lacks for the services to find each other
    and their backing services across containers."""
    problems = []
    for service in SETTINGS:
        env = _environment(services.get(service, {}))
        wanted = [item for item in needed(service) if item.role in COMPOSE_ROLES]
        problems += [f"compose {service}: {setting} is not set" for setting in _missing(wanted, set(env))]
        for item in wanted:
            url = urlsplit(env.get(item.variable, ""))
            if (
                item.role == "peer"
                and item.variable in env
                and (url.hostname, url.port) != (item.peer, item.port)
            ):
                problems.append(f"compose {service}: {item.variable} is not http://{item.peer}:{item.port}")
    return problems


def _env_sources(documents: list[dict[str, Any]], service: str) -> tuple[set[str], set[str]]:
    """(variables from ConfigMaps or plain values, variables from Secrets) of ``service``'s pods."""
    by_kind: dict[tuple[str, str], dict[str, Any]] = {
        (doc["kind"], doc["metadata"]["name"]): doc for doc in documents
    }
    deployment = by_kind.get(("Deployment", service))
    if deployment is None:
        return set(), set()
    plain: set[str] = set()
    secret: set[str] = set()
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                config = by_kind.get(("ConfigMap", source["configMapRef"]["name"]), {})
                plain |= set(config.get("data", {}))
            if "secretRef" in source:
                found = by_kind.get(("Secret", source["secretRef"]["name"]), {})
                secret |= set(found.get("stringData", {})) | set(found.get("data", {}))
        for entry in container.get("env", []):
            from_secret = "secretKeyRef" in entry.get("valueFrom", {})
            (secret if from_secret else plain).add(entry["name"])
    return plain, secret


def kubernetes_problems(documents: list[dict[str, Any]]) -> list[str]:
    """What the Kubernetes manifests (every document of deploy/k8s) lack, or put in the wrong
    place, for a production deployment."""
    in_config_maps = {
        variable for doc in documents if doc["kind"] == "ConfigMap" for variable in doc.get("data", {})
    }
    problems = []
    for service in SETTINGS:
        plain, secret = _env_sources(documents, service)
        if not plain | secret:
            problems.append(f"kubernetes {service}: no Deployment, or it is given no settings")
        wanted = needed(service)
        problems += [
            f"kubernetes {service}: {setting} is not set"
            for setting in _missing(
                [item for item in wanted if item.role not in SECRET_ROLES], plain | secret
            )
        ]
        problems += [
            f"kubernetes {service}: {setting} is in no Secret"
            for setting in _missing([item for item in wanted if item.role in SECRET_ROLES], secret)
        ]
        for item in wanted:
            if item.role in SECRET_ROLES and item.variable in in_config_maps | plain:
                problems.append(f"kubernetes {service}: {item.variable} ({item.role}) is in a ConfigMap")
        config = next(
            (
                doc.get("data", {})
                for doc in documents
                if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == f"{service}-config"
            ),
            {},
        )
        for item in wanted:
            url = urlsplit(str(config.get(item.variable, "")))
            if item.role == "peer" and item.variable in config:
                host = f"{item.peer}.{NAMESPACE}.svc.cluster.local"
                if (url.hostname, url.port) != (host, item.port):
                    problems.append(f"kubernetes {service}: {item.variable} is not http://{host}:{item.port}")
            if (
                item.role == "public"
                and item.variable in config
                and (url.scheme != "https" or str(url.hostname).endswith(".svc.cluster.local"))
            ):
                problems.append(f"kubernetes {service}: {item.variable} is not a public https URL")
    return problems


# --- the files as they are -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert isinstance(services, dict)
    return services


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S_DIR.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def test_compose_sets_what_services_on_several_hosts_need(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


def test_kubernetes_sets_what_production_needs(manifests: list[dict[str, Any]]) -> None:
    assert kubernetes_problems(manifests) == []


# --- the checks catch what they should -----------------------------------------------------


def _without(services: dict[str, Any], service: str, variable: str) -> dict[str, Any]:
    changed = copy.deepcopy(services)
    env = changed[service]["environment"]
    assert variable in env
    del env[variable]
    return changed


def test_compose_without_a_peer_url_fails(compose: dict[str, Any]) -> None:
    assert compose_problems(_without(compose, "case-api", "CASE_API_AGREEMENT_API_URL")) == [
        "compose case-api: CASE_API_AGREEMENT_API_URL (peer) is not set"
    ]


def test_compose_without_the_public_url_or_the_broker_fails(compose: dict[str, Any]) -> None:
    assert compose_problems(_without(compose, "notify-worker", "NOTIFY_WORKER_CASE_API_PUBLIC_URL"))
    assert compose_problems(_without(compose, "agreement-api", "AGREEMENT_API_AMQP_URL"))


def test_compose_with_a_peer_url_on_loopback_fails(compose: dict[str, Any]) -> None:
    changed = copy.deepcopy(compose)
    changed["notify-worker"]["environment"]["NOTIFY_WORKER_CASE_API_URL"] = "http://127.0.0.1:8001"
    assert compose_problems(changed) == [
        "compose notify-worker: NOTIFY_WORKER_CASE_API_URL is not http://case-api:8001"
    ]


def _new_problems(changed: list[dict[str, Any]], manifests: list[dict[str, Any]]) -> list[str]:
    """What the check reports for ``changed`` beyond what it reports for the files as they are."""
    before = kubernetes_problems(manifests)
    return [problem for problem in kubernetes_problems(changed) if problem not in before]


def _find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in documents if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return found


def test_kubernetes_without_a_peer_url_fails(manifests: list[dict[str, Any]]) -> None:
    changed = copy.deepcopy(manifests)
    del _find(changed, "ConfigMap", "case-api-config")["data"]["CASE_API_AGREEMENT_API_URL"]
    assert _new_problems(changed, manifests) == [
        "kubernetes case-api: CASE_API_AGREEMENT_API_URL (peer) is not set"
    ]


def test_kubernetes_with_a_secret_moved_to_the_config_map_fails(manifests: list[dict[str, Any]]) -> None:
    changed = copy.deepcopy(manifests)
    secret = _find(changed, "Secret", "agreement-api-secrets")["stringData"]
    value = secret.pop("AGREEMENT_API_WEBHOOK_KEY_ENCRYPTION_KEYS")
    _find(changed, "ConfigMap", "agreement-api-config")["data"][
        "AGREEMENT_API_WEBHOOK_KEY_ENCRYPTION_KEYS"
    ] = value
    assert _new_problems(changed, manifests) == [
        "kubernetes agreement-api: AGREEMENT_API_WEBHOOK_KEY_ENCRYPTION_KEYS (secret) is in no Secret",
        "kubernetes agreement-api: AGREEMENT_API_WEBHOOK_KEY_ENCRYPTION_KEYS (secret) is in a ConfigMap",
    ]


def test_kubernetes_needs_one_jwt_key_of_the_two(manifests: list[dict[str, Any]]) -> None:
    changed = copy.deepcopy(manifests)
    secret = _find(changed, "Secret", "notify-worker-secrets")["stringData"]
    secret["NOTIFY_WORKER_JWT_PUBLIC_KEY_PEM"] = secret.pop("NOTIFY_WORKER_JWT_JWKS_URL")
    assert _new_problems(changed, manifests) == [], "the PEM does as well"
    del secret["NOTIFY_WORKER_JWT_PUBLIC_KEY_PEM"]
    assert _new_problems(changed, manifests) == [
        "kubernetes notify-worker: NOTIFY_WORKER_JWT_PUBLIC_KEY_PEM or NOTIFY_WORKER_JWT_JWKS_URL (secret) "
        "is in no Secret"
    ]


def test_kubernetes_without_the_deployment_fails(manifests: list[dict[str, Any]]) -> None:
    changed = [
        doc for doc in manifests if (doc["kind"], doc["metadata"]["name"]) != ("Deployment", "notify-worker")
    ]
    assert "kubernetes notify-worker: no Deployment, or it is given no settings" in kubernetes_problems(
        changed
    )


# --- the markers agree with what production refuses ----------------------------------------

_SAMPLES = {
    "database_url": "postgresql://tilbake:secret@db.example.org:5432/tilbake",
    "amqp_url": "amqps://tilbake:secret@mq.example.org:5671/tilbake",
    "jwt_public_key_pem": "-----BEGIN PUBLIC KEY-----\nnot the development key\n-----END PUBLIC KEY-----",
    "jwt_jwks_url": "https://auth.example.org/.well-known/jwks.json",
}


def _production(service: str, leave_out: Collection[str] = ()) -> ServiceSettings:
    """``service``'s settings under production given only its marked settings (sample values),
    less ``leave_out``; raises what production refuses, a missing service token included."""
    values: dict[str, Any] = {"env": "production"}
    for item in needed(service):
        if item.field not in leave_out:
            sample = "https://example.org" if item.role in ("peer", "public") else "s" * 32
            values[item.field] = _SAMPLES.get(item.field, sample)
    settings = SETTINGS[service](**values)
    bearer_token = getattr(settings, "bearer_token", None)
    if bearer_token is not None:
        bearer_token()
    return settings


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    prefixes = tuple(_prefix(cls) for cls in SETTINGS.values())
    for variable in list(os.environ):
        if variable.startswith(prefixes):
            monkeypatch.delenv(variable)


@pytest.mark.parametrize("service", list(SETTINGS))
def test_the_marked_settings_are_enough_for_production(service: str) -> None:
    settings = _production(service)
    assert settings.env == "production"


def _refusable_groups(service: str) -> list[set[str]]:
    """The marked backing and secret settings of ``service``: each alone, or with its group."""
    groups: dict[str, set[str]] = {}
    for item in needed(service):
        if item.role in SECRET_ROLES:
            groups.setdefault(item.one_of or item.field, set()).add(item.field)
    return list(groups.values())


@pytest.mark.parametrize(
    ("service", "left_out"),
    [(service, group) for service in SETTINGS for group in _refusable_groups(service)],
    ids=lambda value: value if isinstance(value, str) else "+".join(sorted(value)),
)
def test_production_refuses_to_run_without_each_backing_or_secret(service: str, left_out: set[str]) -> None:
    # A pydantic ValidationError is a ValueError too; either way the message names what to set.
    variables = "|".join(re.escape(f"{_prefix(SETTINGS[service])}{field.upper()}") for field in left_out)
    with pytest.raises(ValueError, match=variables):
        _production(service, left_out)


# --- the queue type the ConfigMaps set reaches the broker ----------------------------------


async def test_the_config_maps_queue_type_declares_quorum_queues(
    manifests: list[dict[str, Any]],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each service's queues, declared as its settings from the ConfigMap say, are quorum queues
    (replicated on a RabbitMQ cluster): the broker refuses to have any of them again as classic."""
    declared: dict[str, dict[str, Any]] = {}
    declare_queue = aio_pika.RobustChannel.declare_queue

    async def spy(channel: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        declared[name] = dict(kwargs.get("arguments") or {})
        return await declare_queue(channel, name, *args, **kwargs)

    async def ignore(event: EventEnvelope) -> None:
        pass

    monkeypatch.setattr(aio_pika.RobustChannel, "declare_queue", spy)
    for service, cls in SETTINGS.items():
        prefix = _prefix(cls)
        config = _find(manifests, "ConfigMap", f"{service}-config")["data"]
        settings = cls(
            queue_type=config[f"{prefix}QUEUE_TYPE"], amqp_url=rabbitmq.url, event_exchange=exchange_name
        )
        queue = unique_name(f"test.{service}")
        amqp_queues.append(queue)
        bus = create_bus(
            settings.amqp_url,
            exchange=settings.event_exchange,
            queue_type=settings.queue_type,
            retry_delays=settings.event_retry_delays,
        )
        try:
            await bus.subscribe(queue, ["test.quorum"], ignore)
        finally:
            await bus.close()
    assert len(declared) >= 3 * len(SETTINGS), "each service declares its queue, dead letters and retries"

    connection = await aio_pika.connect(rabbitmq.url)
    try:
        for name, arguments in declared.items():
            channel = await connection.channel()
            with pytest.raises(ChannelPreconditionFailed, match="inequivalent arg 'x-queue-type'"):
                await channel.declare_queue(
                    name, durable=True, arguments={**arguments, "x-queue-type": "classic"}
                )
    finally:
        await connection.close()
