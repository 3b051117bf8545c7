"""Static checks of the deployment files: docker-compose.yml, deploy/Dockerfile, deploy/k8s.

No container engine is needed: the files are parsed and compared with the settings classes, so a
renamed setting or a missing dependency fails here instead of at `docker compose up`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import REPO_ROOT, ServiceSettings, settings_fields
from tilbake.cli import settings_classes

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"

SERVICES = ("case-api", "agreement-api", "notify-worker")
INFRASTRUCTURE = ("postgres", "rabbitmq", "migrate")
SETTINGS = dict(settings_classes())


def _prefix(cls: type[ServiceSettings]) -> str:
    return str(cls.model_config.get("env_prefix", "")).upper()


def _defaults(value: str) -> str:
    """``${NAME:-default}`` / ``${NAME-default}`` as compose reads them with NAME unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Compose allows a mapping or a list of NAME=value strings; values as with no overrides set."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(name): "" if value is None else _defaults(str(value)) for name, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    assert isinstance(document.get("services"), dict)
    return document["services"]


def test_settings_classes_match_compose_services() -> None:
    assert set(SETTINGS) == set(SERVICES)


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    missing = {*SERVICES, *INFRASTRUCTURE} - set(compose)
    assert not missing, f"docker-compose.yml lacks {sorted(missing)}"


@pytest.mark.parametrize("name", ["postgres", "rabbitmq", *SERVICES])
def test_long_running_services_have_healthchecks(compose: dict[str, Any], name: str) -> None:
    healthcheck = compose[name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable", False)
    test = healthcheck.get("test")
    assert test, f"{name}'s healthcheck has no test"
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name}'s healthcheck test is {test}"


def test_infrastructure_healthchecks_probe_readiness(compose: dict[str, Any]) -> None:
    postgres = " ".join(compose["postgres"]["healthcheck"]["test"])
    rabbitmq = " ".join(compose["rabbitmq"]["healthcheck"]["test"])
    assert "pg_isready" in postgres
    assert "rabbitmq-diagnostics" in rabbitmq
    assert "ping" in rabbitmq or "check_port_connectivity" in rabbitmq


@pytest.mark.parametrize("name", SERVICES)
def test_service_healthcheck_hits_its_own_healthz(compose: dict[str, Any], name: str) -> None:
    port = SETTINGS[name].model_fields["port"].default
    test = " ".join(compose[name]["healthcheck"]["test"])
    assert f":{port}/healthz" in test
    assert "curl" not in test, "the image has no curl"
    assert "wget" not in test, "the image has no wget"


@pytest.mark.parametrize("name", SERVICES)
def test_services_wait_for_infrastructure_and_migrations(compose: dict[str, Any], name: str) -> None:
    deps = _depends_on(compose[name])
    assert deps.get("postgres") == "service_healthy"
    assert deps.get("rabbitmq") == "service_healthy"
    assert deps.get("migrate") == "service_completed_successfully"


def test_migrate_waits_for_postgres_and_upgrades_to_head(compose: dict[str, Any]) -> None:
    migrate = compose["migrate"]
    assert _depends_on(migrate).get("postgres") == "service_healthy"
    command = migrate.get("command")
    command = command.split() if isinstance(command, str) else command
    assert command == ["alembic", "upgrade", "head"]
    env = _environment(migrate)
    assert env.get("DATABASE_URL", "").startswith("postgresql://"), "migrations/env.py reads DATABASE_URL"
    assert "@postgres:" in env["DATABASE_URL"]
    assert "healthcheck" not in migrate or migrate["healthcheck"].get("disable")


@pytest.mark.parametrize("name", SERVICES)
def test_environment_uses_only_real_settings(compose: dict[str, Any], name: str) -> None:
    cls = SETTINGS[name]
    prefix = _prefix(cls)
    known = {variable for variable, _default, _description in settings_fields(cls)}
    env = _environment(compose[name])
    assert env, f"{name} sets no environment"
    wrong_prefix = sorted(variable for variable in env if not variable.startswith(prefix))
    assert not wrong_prefix, f"{name}: {wrong_prefix} do not start with {prefix}"
    unknown = sorted(set(env) - known)
    assert not unknown, f"{name}: {unknown} are not fields of {cls.__module__}.{cls.__name__}"


@pytest.mark.parametrize("name", SERVICES)
def test_environment_points_at_the_compose_infrastructure(compose: dict[str, Any], name: str) -> None:
    prefix = _prefix(SETTINGS[name])
    env = _environment(compose[name])
    assert env.get(f"{prefix}DATABASE_URL", "").startswith("postgresql://")
    assert "@postgres:5432/" in env[f"{prefix}DATABASE_URL"]
    assert env.get(f"{prefix}AMQP_URL", "").startswith("amqp://")
    assert "@rabbitmq:5672" in env[f"{prefix}AMQP_URL"]
    # The services must listen beyond the container's loopback for ports and healthchecks.
    assert env.get(f"{prefix}HOST") == "0.0.0.0"


@pytest.mark.parametrize("name", SERVICES)
def test_environment_is_accepted_by_the_settings_class(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = SETTINGS[name]
    prefix = _prefix(cls)
    for variable in list(os.environ):
        if variable.startswith(prefix):
            monkeypatch.delenv(variable)
    for variable, value in _environment(compose[name]).items():
        monkeypatch.setenv(variable, value)
    settings = cls()
    # env=dev on purpose: the dev JWT key the services then fall back on is refused in production.
    assert settings.env == "dev"
    assert settings.database_url.startswith("postgresql+asyncpg://")
    published = {_defaults(str(port)).split(":")[-1] for port in compose[name].get("ports", [])}
    assert str(settings.port) in published


def test_worker_reaches_the_apis_by_service_name(compose: dict[str, Any]) -> None:
    env = _environment(compose["notify-worker"])
    case_port = SETTINGS["case-api"].model_fields["port"].default
    agreement_port = SETTINGS["agreement-api"].model_fields["port"].default
    assert env.get("NOTIFY_WORKER_CASE_API_URL") == f"http://case-api:{case_port}"
    assert env.get("NOTIFY_WORKER_AGREEMENT_API_URL") == f"http://agreement-api:{agreement_port}"


@pytest.mark.parametrize("name", ["migrate", *SERVICES])
def test_built_from_the_shared_dockerfile(compose: dict[str, Any], name: str) -> None:
    build = compose[name].get("build")
    assert isinstance(build, dict), f"{name} is not built from deploy/Dockerfile"
    context = (REPO_ROOT / build.get("context", ".")).resolve()
    assert context == REPO_ROOT.resolve(), "the build context must be the repository root"
    assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE.resolve()


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_multi_stage_and_installs_from_the_lock() -> None:
    instructions = _dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "expected a build stage and a runtime stage"
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    syncs = [
        sync
        for keyword, rest in instructions
        if keyword == "RUN"
        for sync in re.findall(r"uv sync\b[^;&|]*", rest)
    ]
    assert syncs, "dependencies must be installed with uv sync"
    for sync in syncs:
        assert "--frozen" in sync, f"`{sync.strip()}` may re-resolve instead of using uv.lock"
        assert "--no-dev" in sync, f"`{sync.strip()}` installs the dev group"
    assert re.search(r"pip install \S*uv==", runs), "uv must be pinned"
    copies = " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    assert "uv.lock" in copies


def test_dockerfile_pins_the_uv_version_of_dev_py() -> None:
    dev_py = (REPO_ROOT / "dev.py").read_text()
    pinned = re.search(r'UV_VERSION\s*=\s*"([^"]+)"', dev_py)
    assert pinned
    assert f"UV_VERSION={pinned.group(1)}" in DOCKERFILE.read_text()


def test_dockerfile_runs_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    last_stage = max(i for i, (keyword, _rest) in enumerate(instructions) if keyword == "FROM")
    users = [rest for keyword, rest in instructions[last_stage:] if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runtime user is {users[-1]}"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git"} <= entries
    # The image needs these; settings read the dev key from the source tree.
    assert not entries & {"deploy", "deploy/dev-keys", "uv.lock", "pyproject.toml", "migrations"}


# --- Kubernetes ----------------------------------------------------------------------------


def _manifests() -> list[Path]:
    return sorted([*K8S_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yml")])


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in _manifests():
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return docs


def _find(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in _documents() if doc.get("kind") == kind and doc["metadata"].get("name") == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def test_k8s_manifests_exist() -> None:
    assert _manifests(), "deploy/k8s has no manifests"


@pytest.mark.parametrize("path", _manifests(), ids=lambda path: path.name)
def test_k8s_manifest_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion"), f"{path.name}: a document has no apiVersion"
        assert doc.get("kind"), f"{path.name}: a document has no kind"
        assert doc.get("metadata", {}).get("name"), f"{path.name}: a {doc['kind']} has no name"


def test_k8s_worker_outlives_its_shutdown_grace() -> None:
    grace = SETTINGS["notify-worker"].model_fields["shutdown_grace_seconds"].default
    spec = _find("Deployment", "notify-worker")["spec"]
    autoscaler = _find("HorizontalPodAutoscaler", "notify-worker")["spec"]
    assert autoscaler["minReplicas"] >= 2, "the worker runs competing consumers"
    termination = spec["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    assert termination > grace
    # notify_worker/__main__.py gives uvicorn grace + 5 s for the whole shutdown.
    assert termination > grace + 5


@pytest.mark.parametrize("name", ["case-api", "agreement-api"])
def test_k8s_apis_have_probes_resources_and_a_service(name: str) -> None:
    port = SETTINGS[name].model_fields["port"].default
    spec = _find("Deployment", name)["spec"]
    assert _find("HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert [p["containerPort"] for p in container["ports"]] == [port]
    service = _find("Service", name)["spec"]
    assert service["selector"] == spec["selector"]["matchLabels"]


@pytest.mark.parametrize("name", SERVICES)
def test_k8s_every_service_has_a_service_on_its_port(name: str) -> None:
    # notify-worker's too: recipients POST their receipts to it.
    port = SETTINGS[name].model_fields["port"].default
    deployment = _find("Deployment", name)["spec"]
    service = _find("Service", name)["spec"]
    assert service["selector"] == deployment["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(port, "http")]
    (container,) = deployment["template"]["spec"]["containers"]
    assert {"name": "http", "containerPort": port} in container["ports"]


def test_k8s_configmaps_use_only_real_settings() -> None:
    for name, cls in SETTINGS.items():
        known = {variable for variable, _default, _description in settings_fields(cls)}
        data = _find("ConfigMap", f"{name}-config").get("data", {})
        assert data.get(f"{_prefix(cls)}ENV") == "production"
        unknown = sorted(set(data) - known)
        assert not unknown, f"{name}-config: {unknown} are not settings of {name}"


def test_k8s_secret_template_holds_placeholders_for_real_settings() -> None:
    for name, cls in SETTINGS.items():
        known = {variable for variable, _default, _description in settings_fields(cls)}
        data = _find("Secret", f"{name}-secrets").get("stringData", {})
        assert not set(data) - known, f"{name}-secrets: {sorted(set(data) - known)} are not settings"
        prefix = _prefix(cls)
        assert {f"{prefix}DATABASE_URL", f"{prefix}AMQP_URL"} <= set(data)
        # Production refuses to start without a real verification key.
        assert {f"{prefix}JWT_JWKS_URL", f"{prefix}JWT_PUBLIC_KEY_PEM"} & set(data)
        assert all("CHANGE_ME" in value for value in data.values()), f"{name}-secrets holds a real value"
