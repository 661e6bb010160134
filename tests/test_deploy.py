"""The deployment files in deploy/ are valid and agree with the gateway.

Offline and without a cluster: every Kubernetes manifest that a kustomization
renders validates against the Kubernetes OpenAPI schemas shipped by
``kubernetes-validate`` (strict: an unknown field fails), for the oldest and the
newest Kubernetes the manifests claim.  kustomize itself is not installable from
the package registries, so :func:`render` builds what ``kubectl kustomize`` would
from the few kustomization fields the files use, and refuses any other field
rather than silently ignore it.  The compose cluster is checked for structure and
for the files it mounts; the probes and the load balancer's health check are
asked of a running gateway; the shipped configurations load with the gateway's
own loader.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client import REGISTRY

from gateway.cli import CORE_COMMANDS, build_parser
from gateway.config import ConfigError, Settings, load_settings
from gateway.observability import metrics
from gateway.services import jwt_verifiers
from tests.gateway_fixtures import GatewayUnderTest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
HAPROXY_FILE = COMPOSE_DIR / "haproxy.cfg"

#: The oldest Kubernetes the manifests claim (README "Running a cluster") and the newest
#: whose schemas the validator ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
#: The kustomization fields :func:`render` understands; any other fails the test.
KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "namespace",
    "labels",
}
#: Kinds that live outside a namespace (the ones the manifests use).
CLUSTER_KINDS = {"Namespace"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
GATEWAY = "brokergraph"
CONFIG_MAP = "brokergraph-config"

KUSTOMIZATIONS = sorted(path.parent for path in KUBERNETES.rglob("kustomization.yaml"))

Resource = dict[str, Any]


def load_yaml_documents(path: Path) -> list[Any]:
    """Every non-empty document of a YAML file."""
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


def render(directory: Path) -> list[Resource]:
    """What ``kubectl kustomize directory`` renders, up to generated names' hash suffix."""
    kustomization = load_yaml_documents(directory / "kustomization.yaml")[0]
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{directory}: kustomization fields this test cannot render: {unknown}"
    assert kustomization["kind"] == "Kustomization"
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml lists {entry}, which does not exist"
        resources.extend(render(path) if path.is_dir() else load_yaml_documents(path))
    for generator in kustomization.get("configMapGenerator", []):
        assert set(generator) <= {"name", "files"}, generator
        data = {}
        for name in generator["files"]:
            file = directory / name
            assert file.is_file(), f"{directory}: configMapGenerator file {name} does not exist"
            data[file.name] = file.read_text(encoding="utf-8")
        resources.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    for entry in kustomization.get("labels", []):
        assert set(entry) == {"pairs"}, f"{directory}: labels options this test cannot render"
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(entry["pairs"])
    namespace = kustomization.get("namespace")
    if namespace is not None:
        for resource in resources:
            if resource["kind"] not in CLUSTER_KINDS:
                resource["metadata"]["namespace"] = namespace
    return resources


def listed_files(directory: Path) -> set[Path]:
    """The files a kustomization uses directly: its resources and generator inputs."""
    kustomization = load_yaml_documents(directory / "kustomization.yaml")[0]
    files = {(directory / entry).resolve() for entry in kustomization.get("resources", [])}
    for generator in kustomization.get("configMapGenerator", []):
        files |= {(directory / name).resolve() for name in generator["files"]}
    return files


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_specs(resources: list[Resource]) -> Iterator[tuple[Resource, Resource]]:
    """(workload, its pod template) for every Deployment and StatefulSet."""
    for resource in resources:
        if resource["kind"] in WORKLOAD_KINDS:
            yield resource, resource["spec"]["template"]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def gateway_container(resources: list[Resource]) -> Resource:
    deployment = find(resources, "Deployment", GATEWAY)
    containers: list[Resource] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def settings_from_configmap(resources: list[Resource], tmp_path: Path) -> Settings:
    """The settings a gateway pod loads: the ConfigMap's TOML, then the Secret's variables."""
    config = tmp_path / "brokergraph.toml"
    config.write_text(find(resources, "ConfigMap", CONFIG_MAP)["data"]["brokergraph.toml"])
    environ = dict(find(resources, "Secret", GATEWAY)["stringData"])
    return load_settings(config, environ=environ)


# ------------------------------------------------------------------ Kubernetes


def test_every_kustomization_is_tested_and_every_manifest_is_listed() -> None:
    # Every other test is parametrised by KUSTOMIZATIONS: it must not be empty.
    found = {p.relative_to(KUBERNETES).as_posix() for p in KUSTOMIZATIONS}
    assert {"base", "overlays/trial"} <= found
    for directory in KUSTOMIZATIONS:
        manifests = {p.resolve() for p in directory.iterdir() if p.suffix in {".yaml", ".toml"}}
        manifests.discard((directory / "kustomization.yaml").resolve())
        # A manifest left out of `resources` would silently never be applied.
        assert manifests <= listed_files(directory), directory


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_manifests_validate_against_kubernetes_schemas(directory: Path) -> None:
    failures = []
    for resource in render(directory):
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(part) for part in error.absolute_path)
                failures.append(
                    f"{resource['kind']} {resource['metadata']['name']} ({version}) "
                    f"at {where}: {error.message}"
                )
    assert failures == []


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_workload_references_resolve(directory: Path) -> None:
    """What the schemas cannot see: selectors, volumes and the objects pods name."""
    resources = render(directory)
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    namespace = load_yaml_documents(directory / "kustomization.yaml")[0].get("namespace")
    if namespace is not None:
        assert ("Namespace", namespace) in names
    for workload, template in pod_specs(resources):
        assert selects(workload["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
        if workload["kind"] == "StatefulSet":
            assert ("Service", workload["spec"]["serviceName"]) in names
        spec = template["spec"]
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", spec["serviceAccountName"]) in names
        mounts = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        assert mounts <= {v["name"] for v in spec.get("volumes", [])} | claims
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                config_map = find(resources, "ConfigMap", volume["configMap"]["name"])
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in config_map["data"]
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert ("Secret", source["secretRef"]["name"]) in names
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None:
                    secret = find(resources, "Secret", reference["name"])
                    assert reference["key"] in secret["stringData"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_services_and_budgets_select_pods(directory: Path) -> None:
    resources = render(directory)
    templates = [template for _, template in pod_specs(resources)]
    for service in (r for r in resources if r["kind"] == "Service"):
        selected = [
            t for t in templates if selects(service["spec"]["selector"], t["metadata"]["labels"])
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)}"
        port_names = {p["name"] for c in selected[0]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    for budget in (r for r in resources if r["kind"] == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selects(selector, t["metadata"]["labels"]) for t in templates)


def test_gateway_deployment_is_replicated_probed_and_locked_down() -> None:
    resources = render(KUBERNETES / "base")
    deployment = find(resources, "Deployment", GATEWAY)
    pod = deployment["spec"]["template"]["spec"]
    container = gateway_container(resources)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = find(resources, "PodDisruptionBudget", GATEWAY)
    assert budget["spec"]["maxUnavailable"] == 1
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The endpoint goes before SIGTERM comes; after the sleep the gateway has at
    # least 20 s to finish requests (uvicorn's graceful timeout is 5 s) and close.
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] - int(sleep[1]) >= 20
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Containerfile's user
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The only writable mounts are emptyDirs (a temporary directory, nothing kept).
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount.get("readOnly") is True or "emptyDir" in volumes[mount["name"]], mount
    assert "USER brokergraph" in (REPO / "Containerfile").read_text()
    assert "--uid 10001" in (REPO / "Containerfile").read_text()


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_configmap_loads_with_the_gateway_loader(directory: Path, tmp_path: Path) -> None:
    resources = render(directory)
    settings = settings_from_configmap(resources, tmp_path)
    container = gateway_container(resources)
    (http,) = (p for p in container["ports"] if p["name"] == "http")
    assert settings.server.port == http["containerPort"]
    assert settings.server.host == "0.0.0.0"
    assert settings.store.url.startswith("postgresql+asyncpg://")
    assert settings.cache.url.startswith("redis://")
    assert settings.events.url.startswith("redis://")
    assert settings.cache.secret is not None  # the same on every replica
    # The pod reads the file where the ConfigMap is mounted.
    (config,) = (v["value"] for v in container["env"] if v["name"] == "BROKERGRAPH_CONFIG")
    (mount,) = (m for m in container["volumeMounts"] if m["name"] == "config")
    assert Path(config).parent == Path(mount["mountPath"])
    # The placeholder JWT secret is refused: an unedited deploy does not start.
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        jwt_verifiers(settings.auth)


def test_trial_postgres_password_matches_the_store_url(tmp_path: Path) -> None:
    resources = render(KUBERNETES / "overlays" / "trial")
    settings = settings_from_configmap(resources, tmp_path)
    password = find(resources, "Secret", "postgres")["stringData"]["POSTGRES_PASSWORD"]
    assert f"brokergraph:{password}@postgres:5432/brokergraph" in settings.store.url
    assert {r["metadata"]["name"] for r in resources if r["kind"] == "StatefulSet"} == {
        "postgres",
        "redis",
    }


# ------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    (document,) = load_yaml_documents(COMPOSE_FILE)
    assert isinstance(document, dict)
    return document


def bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path → host path of a service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def compose_settings() -> Settings:
    gateway = compose()["services"]["gateway"]
    environment = dict(gateway["environment"])
    config = bind_mounts(gateway)[environment["BROKERGRAPH_CONFIG"]]
    return load_settings(config, environ=environment)


def test_compose_cluster_structure_and_files() -> None:
    document = compose()
    assert set(document) <= {"name", "services", "volumes"}
    services = document["services"]
    assert set(services) == {"gateway", "lb", "postgres", "redis"}
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 3
    context = (COMPOSE_DIR / gateway["build"]["context"]).resolve()
    assert context == REPO
    assert (context / gateway["build"]["dockerfile"]).is_file()
    assert gateway["read_only"] is True
    named_volumes = set(document.get("volumes", {}))
    for name, service in services.items():
        assert "image" in service, f"{name}: every service names its image"
        tag = service["image"].rsplit("/", 1)[-1]
        assert ":" in tag, f"{name}: pin the image's tag"
        assert not tag.endswith(":latest"), f"{name}: pin the image's tag"
        for host_path in bind_mounts(service).values():
            assert host_path.is_file(), f"{name} mounts {host_path}, which does not exist"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named_volumes, f"{name}: volume {source} is not declared"
        assert set(service.get("depends_on", {})) <= set(services)
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: trial secrets stay on this machine"


def test_compose_config_loads_and_serves() -> None:
    settings = compose_settings()
    # The replicas reach the other services by their compose names.
    assert urlsplit(settings.store.url).hostname == "postgres"
    assert urlsplit(settings.cache.url).hostname == "redis"
    assert urlsplit(settings.events.url).hostname == "redis"
    assert settings.cache.secret is not None
    # Unlike the Kubernetes placeholder, the trial's secret is long enough to serve.
    assert jwt_verifiers(settings.auth)
    postgres = compose()["services"]["postgres"]["environment"]
    user, password, database = (
        postgres[k] for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
    )
    assert f"//{user}:{password}@postgres:5432/{database}" in settings.store.url


def test_load_balancer_targets_the_gateway_replicas() -> None:
    config = HAPROXY_FILE.read_text(encoding="utf-8")
    port = compose_settings().server.port
    (target,) = re.findall(r"^\s*server-template\s+\S+\s+\d+\s+(\S+)", config, re.MULTILINE)
    assert target == f"gateway:{port}"
    binds = re.findall(r"^\s*bind\s+:(\d+)", config, re.MULTILINE)
    published = [p.split(":")[-1] for p in compose()["services"]["lb"]["ports"]]
    assert sorted(binds) == sorted(published)
    # A request is retried on another replica only when it never left the proxy.
    assert re.findall(r"^\s*retry-on\s+(.+)$", config, re.MULTILINE) == ["conn-failure"]


# ------------------------------------------------------------------ routes


def probe_paths() -> set[str]:
    """Every HTTP path a probe, health check or load balancer asks of the gateway."""
    paths = set()
    for directory in KUSTOMIZATIONS:
        for _, template in pod_specs(render(directory)):
            for container in template["spec"]["containers"]:
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if "httpGet" in container.get(probe, {}):
                        paths.add(container[probe]["httpGet"]["path"])
    haproxy = HAPROXY_FILE.read_text(encoding="utf-8")
    paths |= set(re.findall(r"^\s*http-check\s+send\b.*\buri\s+(/\S*)", haproxy, re.MULTILINE))
    healthcheck = " ".join(compose()["services"]["gateway"]["healthcheck"]["test"])
    paths |= set(re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", healthcheck))
    containerfile = (REPO / "Containerfile").read_text(encoding="utf-8")
    paths |= set(re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", containerfile))
    return paths


async def test_probe_paths_are_routes_the_gateway_serves(gateway: GatewayUnderTest) -> None:
    paths = probe_paths()
    assert paths == {"/healthz", "/readyz"}
    for path in sorted(paths):
        response = await gateway.http.get(f"{gateway.url}{path}")
        assert response.status_code == 200, (path, response.text)


async def test_the_scraped_metrics_path_is_served(gateway: GatewayUnderTest) -> None:
    deployment = find(render(KUBERNETES / "base"), "Deployment", GATEWAY)
    path = deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    response = await gateway.http.get(f"{gateway.url}{path}")
    assert response.status_code == 200
    assert "brokergraph_graphql_operations_total" in response.text


# ------------------------------------------------------------------ operations

PROMETHEUS = KUBERNETES / "prometheus"
JOBS = KUBERNETES / "jobs"
DASHBOARD = DEPLOY / "grafana" / "brokergraph.json"
REQUIREMENTS = REPO / "requirements"


def test_pods_are_annotated_for_prometheus_and_a_service_monitor_matches() -> None:
    resources = render(KUBERNETES / "base")
    deployment = find(resources, "Deployment", GATEWAY)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    (http,) = (p for p in gateway_container(resources)["ports"] if p["name"] == "http")
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(http["containerPort"])
    assert annotations["prometheus.io/path"] == load_settings(environ={}).observability.metrics_path

    (monitor,) = load_yaml_documents(PROMETHEUS / "servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    service = find(resources, "Service", GATEWAY)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == annotations["prometheus.io/path"]
    # No schema for a CRD: the fields used are the ones the operator documents.
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    assert all(set(e) <= {"port", "path", "interval"} for e in monitor["spec"]["endpoints"])


def test_the_db_upgrade_job_runs_the_gateways_image_and_store() -> None:
    resources = render(KUBERNETES / "base")
    (job,) = load_yaml_documents(JOBS / "db-upgrade.yaml")
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == gateway_container(resources)["image"]
    assert container["args"] == ["db", "upgrade"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert ("ServiceAccount", pod["serviceAccountName"]) in {
        (r["kind"], r["metadata"]["name"]) for r in resources
    }
    (source,) = container["envFrom"]
    secret = find(resources, "Secret", source["secretRef"]["name"])
    assert "BROKERGRAPH_STORE__URL" in secret["stringData"]
    parsed = build_parser(CORE_COMMANDS).parse_args(container["args"])
    assert parsed.db_action == "upgrade"


def _metric_names() -> set[str]:
    """Every sample name the gateway's metrics can expose."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    families = [
        *REGISTRY.collect(),
        *metrics.HealthCollector(lambda: {}).collect(),
    ]
    return {
        family.name + suffix
        for family in families
        if family.name.startswith("brokergraph_")
        for suffix in suffixes[family.type]
    }


def test_the_grafana_dashboard_charts_metrics_the_gateway_exposes() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    known = _metric_names()
    assert "brokergraph_graphql_operations_total" in known  # the registry was read
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    charted = set()
    for panel in panels:
        exprs = [target["expr"] for target in panel["targets"]]
        names = {name for expr in exprs for name in re.findall(r"\bbrokergraph_\w+", expr)}
        assert names, f"panel {panel['title']!r} charts no gateway metric"
        assert names <= known, f"panel {panel['title']!r}: {sorted(names - known)} not exposed"
        charted |= names
    for main in (
        "brokergraph_graphql_errors_total",
        "brokergraph_upstream_calls_total",
        "brokergraph_breaker_state",
        "brokergraph_idempotency_outcomes_total",
    ):
        assert main in charted


def _locked(lock: Path) -> dict[str, str]:
    """name -> the whole requirement entry of a pip-compile lock."""
    entries = re.split(r"\n(?=\S)", lock.read_text(encoding="utf-8"))
    return {
        canonicalize_name(entry.split("==")[0]): entry
        for entry in entries
        if re.match(r"[A-Za-z0-9]", entry)
    }


def test_the_containerfile_keeps_state_in_a_volume_and_installs_by_hash() -> None:
    containerfile = (REPO / "Containerfile").read_text(encoding="utf-8")
    assert 'VOLUME ["/var/lib/brokergraph"]' in containerfile
    # The default SQLite URL is relative to the working directory: inside the volume.
    assert "WORKDIR /var/lib/brokergraph" in containerfile
    assert load_settings(environ={}).store.url == "sqlite+aiosqlite:///var/brokergraph.db"
    installs = re.findall(r"pip install ((?:[^\n]|\\\n)+)", containerfile)
    assert installs
    for install in installs:
        if " -r " in install:
            assert "--require-hashes" in install, install
        else:  # our own wheels, built in the image: nothing else may come in
            assert "--no-deps" in install and "--no-index" in install, install
    # A moved folder fails the build at its COPY: every source must exist here.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", containerfile, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), f"Containerfile copies {path}, which does not exist"
    assert "--no-build-isolation" in containerfile  # builds use the locked tools
    assert "--require-hashes -r requirements/build.lock" in containerfile
    assert "--require-hashes --only-binary=:all: -r /tmp/image.lock" in containerfile


@pytest.mark.parametrize("name", ["image", "build"])
def test_the_locks_pin_every_dependency_with_hashes(name: str) -> None:
    locked = _locked(REQUIREMENTS / f"{name}.lock")
    assert locked
    for package, entry in locked.items():
        assert re.match(r"\S+==\S+ \\\n", entry), f"{package} is not pinned"
        assert "--hash=sha256:" in entry, f"{package} has no hash"
    if name == "build":
        return
    assert not any(p.startswith("brokergraph") for p in locked)  # built in the image
    pyprojects = [REPO / "pyproject.toml", *sorted(REPO.glob("plugins/*/pyproject.toml"))]
    declared = {
        canonicalize_name(Requirement(line).name)
        for pyproject in pyprojects
        for line in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    }
    for package, entry in locked.items():
        wanted_by = set(re.findall(r"^\s+#\s+(?:via\s+)?([\w.-]+)\s*$", entry, re.MULTILINE))
        if any(name.startswith("brokergraph") for name in wanted_by):
            # A dependency dropped from a pyproject must leave the image too.
            assert package in declared, f"{package} is no longer declared: run scripts/lock-image"
    for pyproject in pyprojects:
        for line in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]:
            requirement = Requirement(line)
            if requirement.name == "brokergraph":
                continue
            package = canonicalize_name(requirement.name)
            assert package in locked, f"{pyproject}: {package} missing: run scripts/lock-image"
            version = locked[package].split("==")[1].split()[0]
            assert requirement.specifier.contains(version), (
                f"{package}=={version} is outside {pyproject}'s {requirement.specifier}: "
                "run scripts/lock-image"
            )
