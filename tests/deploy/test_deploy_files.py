"""The deployment files under ``deploy/``, tested as data (no container runtime here).

What matters for an operator who copies them: the probes ask ``/healthz`` and ``/readyz`` on
the port the gateway listens on; every environment variable the files set is one the gateway
reads (a misspelt one is silently ignored, which is the dangerous failure); no secret value
is written in any file; the deployment folder they mount is a deployment the gateway loads;
the image runs as a non-root user; the systemd unit is sandboxed.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_deployment, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
CONFIG = KUBE / "gateway-config"
COMPOSE = DEPLOY / "compose.yaml"
CONTAINERFILE = DEPLOY / "Containerfile"
UNIT = DEPLOY / "systemd" / "mash-gateway.service"
CONFIG_MOUNT = "/etc/mash-gateway"
SECRET_NAME = "mash-gateway-secrets"
SECRET_LOOKING = re.compile(r"PASSWORD|PASS$|SECRET|TOKEN|_URL$|KEY")
# Environment variables for the Python runtime, not for the gateway.
RUNTIME_ENV = re.compile(r"^(PYTHON[A-Z_]*|PIP_[A-Z_]+)$")
# A webhook signing secret or a password in a URL written out in full; the placeholders
# PASSWORD, ... and ${VARIABLE} are what the files are meant to hold instead.
INLINED_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{8,}|://[^:/@\s]+:(?!PASSWORD@|\.\.\.@|\$\{)[^@\s]+@")


# --- what the gateway reads -------------------------------------------------------------


@functools.cache
def gateway_env_names() -> tuple[frozenset[str], frozenset[str]]:
    """The environment variables the gateway's code names: exact names, and prefixes (a
    literal ending in ``_``, e.g. ``GATEWAY_WEBHOOK_SECRET_`` + partner id)."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"GATEWAY_[A-Z0-9_]+", node.value)
            ):
                (prefixes if node.value.endswith("_") else exact).add(node.value)
    return frozenset(exact), frozenset(prefixes)


def is_read_by_gateway(name: str) -> bool:
    exact, prefixes = gateway_env_names()
    return name in exact or any(name.startswith(p) and len(name) > len(p) for p in prefixes)


def webhook_secret_env(partner_id: str) -> str:
    return "GATEWAY_WEBHOOK_SECRET_" + partner_id.upper().replace("-", "_")


def webhook_partners() -> set[str]:
    partners = yaml.safe_load((CONFIG / "partners.yaml").read_text())["partners"]
    return {p["id"] for p in partners if p["delivery"]["mode"] == "webhook"}


def gateway_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://gateway@db.invalid/gateway")
    monkeypatch.setenv("GATEWAY_AMQP_URL", "amqp://gateway@broker.invalid/")
    return load_settings(CONFIG)


# --- the files --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def gateway_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the gateway image (the instances and the migration)."""
    return {
        name: s for name, s in compose()["services"].items() if s.get("image", "").startswith("mash-gateway")
    }


def instances() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in gateway_services().items() if s["command"][0] == "serve"}


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((KUBE / resource).read_text()) if d)
    return docs


def manifest(kind: str) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == kind]
    return found


def pod_specs() -> Iterator[dict[str, Any]]:
    for m in manifests():
        if m["kind"] in {"Deployment", "Job"}:
            yield m["spec"]["template"]["spec"]


def containers() -> Iterator[dict[str, Any]]:
    for spec in pod_specs():
        yield from spec["containers"]


def gateway_container() -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(found)


def interpolated(value: str) -> bool:
    """A compose value taken from the operator's environment, not written here."""
    return bool(re.fullmatch(r"(\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}|[^$]*)*", value)) and "${" in value


def unit_entries() -> dict[str, dict[str, list[str]]]:
    """The unit file as section -> key -> values (systemd allows a key several times)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def containerfile_instructions() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def exec_form(value: str) -> list[str]:
    parsed: list[str] = yaml.safe_load(value)
    return parsed


# --- tests ------------------------------------------------------------------------------


class TestDeploymentFolder:
    def test_it_is_a_scale_out_deployment_the_gateway_loads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://gateway@db.invalid/gateway")
        monkeypatch.setenv("GATEWAY_AMQP_URL", "amqp://gateway@broker.invalid/")
        for partner in webhook_partners():
            monkeypatch.setenv(webhook_secret_env(partner), "whsec_ZGVwbG95LXRlc3Qtc2VjcmV0LW5vdC1yZWFsLTAw")
        deployment = load_deployment(CONFIG)
        s = deployment.settings
        assert s.store_backend == "rabbitmq-postgresql"
        assert s.database_url is not None
        assert s.amqp_url is not None
        assert s.host == "0.0.0.0"  # noqa: S104 - inside a container or pod, behind a Service
        assert not s.create_keyring  # a real deployment provisions its keyring
        assert s.data_dir.is_absolute()
        assert s.keyring_path.is_absolute()

    def test_no_database_url_is_written_in_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        settings = yaml.safe_load((CONFIG / "gateway.yaml").read_text())
        assert "url" not in settings["store"]
        assert "amqp_url" not in settings["store"]

    def test_the_kubernetes_config_map_holds_the_whole_folder(self) -> None:
        kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
        (generator,) = kustomization["configMapGenerator"]
        files = {Path(f).name for f in generator["files"]}
        assert files == {p.name for p in CONFIG.iterdir() if p.is_file()}
        assert all((KUBE / f).is_file() for f in generator["files"])


class TestEnvironment:
    def test_the_gateway_reads_the_variables_this_test_relies_on(self) -> None:
        # If this fails the scan below is blind: the gateway names its variables differently.
        assert is_read_by_gateway("GATEWAY_DATABASE_URL")
        assert is_read_by_gateway("GATEWAY_AMQP_URL")
        assert is_read_by_gateway(webhook_secret_env("csc-northshire"))
        assert not is_read_by_gateway("GATEWAY_DATABASE_URI")

    def test_every_variable_the_files_set_is_one_the_gateway_reads(self) -> None:
        names: dict[str, set[str]] = {}
        for service, spec in gateway_services().items():
            names[f"compose {service}"] = set(spec.get("environment", {}))
        for container in containers():
            names[f"kubernetes {container['name']}"] = {e["name"] for e in container.get("env", [])}
        names["Containerfile"] = {
            part.split("=", 1)[0]
            for keyword, rest in containerfile_instructions()
            if keyword == "ENV"
            for part in shlex.split(rest)
        }
        names["systemd example"] = set(re.findall(r"^#\s+(GATEWAY_[A-Z0-9_]+)=", UNIT.read_text(), re.M))
        unknown = {
            where: sorted(n for n in found if not RUNTIME_ENV.match(n) and not is_read_by_gateway(n))
            for where, found in names.items()
        }
        assert {k: v for k, v in unknown.items() if v} == {}
        assert all(names[w] for w in names if w != "Containerfile"), names

    def test_every_webhook_partner_gets_its_signing_secret_in_each_runtime(self) -> None:
        expected = {webhook_secret_env(p) for p in webhook_partners()}
        assert expected
        for name, spec in instances().items():
            assert expected <= set(spec["environment"]), name
        assert expected <= {e["name"] for e in gateway_container()["env"]}


class TestNoSecretIsInlined:
    def test_no_file_under_deploy_outside_the_example_holds_a_secret_value(self) -> None:
        files = [p for p in DEPLOY.rglob("*") if p.is_file() and "example" not in p.relative_to(DEPLOY).parts]
        assert len(files) >= 10
        found = {str(p.relative_to(DEPLOY)): INLINED_SECRET.findall(p.read_text()) for p in files}
        assert {k: v for k, v in found.items() if v} == {}

    def test_compose_takes_every_secret_from_the_environment_or_a_file(self) -> None:
        doc = compose()
        for name, service in doc["services"].items():
            for key, value in service.get("environment", {}).items():
                if SECRET_LOOKING.search(key) and not key.endswith("_FILE"):
                    assert interpolated(str(value)), f"{name}: {key} is written in the file"
        for name, secret in doc["secrets"].items():
            assert set(secret) <= {"environment", "file"}, name
            assert "file" not in secret or interpolated(secret["file"]), name

    def test_kubernetes_only_references_the_secret(self) -> None:
        assert "Secret" not in {m["kind"] for m in manifests()}
        refs: set[str] = set()
        for container in containers():
            for env in container.get("env", []):
                if SECRET_LOOKING.search(env["name"]):
                    assert "value" not in env, env["name"]
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == SECRET_NAME
                    refs.add(ref["key"])
        for spec in pod_specs():
            for volume in spec["volumes"]:
                if "secret" in volume:
                    assert volume["secret"]["secretName"] == SECRET_NAME
                    refs.update(item["key"] for item in volume["secret"]["items"])
        # The README tells the operator how to create every key the manifests use.
        readme = (KUBE / "README.md").read_text()
        assert refs >= {"database-url", "keyring.json"}
        assert all(f"{key}=" in readme for key in refs), refs


class TestCompose:
    def test_two_instances_a_broker_a_database_and_a_one_shot_migration(self) -> None:
        services = compose()["services"]
        assert len(instances()) == 2
        assert {"postgres", "rabbitmq"} <= set(services)
        (migrate,) = [s for s in gateway_services().values() if s["command"][:2] == ["db", "upgrade"]]
        assert migrate["restart"] == "no"
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        for name, spec in instances().items():
            assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
            assert spec["depends_on"]["postgres"]["condition"] == "service_healthy", name
        for name in ("postgres", "rabbitmq"):
            assert services[name]["healthcheck"]["test"], name

    def test_instances_probe_readiness_on_the_listen_port(self, monkeypatch: pytest.MonkeyPatch) -> None:
        port = gateway_settings(monkeypatch).port
        for name, spec in instances().items():
            probe = " ".join(spec["healthcheck"]["test"])
            assert f"http://127.0.0.1:{port}/readyz" in probe, name
            assert any(p.endswith(f":{port}") for p in spec["ports"]), name

    def test_instances_mount_the_folder_read_only_the_keyring_and_a_data_volume(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = gateway_settings(monkeypatch)
        declared = set(compose()["volumes"])
        for name, spec in instances().items():
            assert spec["command"] == ["serve", "--config", CONFIG_MOUNT], name
            binds = [v for v in spec["volumes"] if isinstance(v, dict)]
            (config,) = [v for v in binds if v["target"] == CONFIG_MOUNT]
            assert config["read_only"] is True
            assert (COMPOSE.parent / config["source"]).resolve() == CONFIG
            named = dict(v.split(":", 1) for v in spec["volumes"] if isinstance(v, str))
            assert str(settings.data_dir) in named.values(), name
            assert set(named) <= declared
            (keyring,) = spec["secrets"]
            assert keyring["target"] == str(settings.keyring_path)


class TestKubernetes:
    def test_two_replicas_rolled_one_at_a_time(self) -> None:
        deployment = manifest("Deployment")
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert manifest("PodDisruptionBudget")["spec"]["minAvailable"] == 1

    def test_probes_hit_healthz_and_readyz_on_the_listen_port(self, monkeypatch: pytest.MonkeyPatch) -> None:
        port = gateway_settings(monkeypatch).port
        container = gateway_container()
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container[probe]["httpGet"]
            assert (get["path"], resolve_port(container, get["port"])) == (path, port), probe
        service = manifest("Service")
        (service_port,) = service["spec"]["ports"]
        assert resolve_port(container, service_port["targetPort"]) == port
        labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()

    def test_containers_have_limits_and_run_unprivileged(self) -> None:
        for spec in pod_specs():
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["runAsUser"] != 0
            assert spec["automountServiceAccountToken"] is False
            for container in spec["containers"]:
                assert {"cpu", "memory"} <= set(container["resources"]["limits"]), container["name"]
                assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
                security = container["securityContext"]
                assert security["allowPrivilegeEscalation"] is False
                assert security["readOnlyRootFilesystem"] is True
                assert security["capabilities"]["drop"] == ["ALL"]

    def test_mounts_match_the_paths_in_gateway_yaml(self, monkeypatch: pytest.MonkeyPatch) -> None:
        settings = gateway_settings(monkeypatch)
        for spec in pod_specs():
            volumes = {v["name"]: v for v in spec["volumes"]}
            for container in spec["containers"]:
                assert container["args"][-2:] == ["--config", CONFIG_MOUNT]
                mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
                assert mounts[CONFIG_MOUNT]["configMap"]["name"] == "mash-gateway-config"
        container = gateway_container()
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        keyring = mounts[str(settings.keyring_path.parent)]
        assert keyring["readOnly"] is True
        assert str(settings.data_dir) in mounts
        assert not mounts[str(settings.data_dir)].get("readOnly", False)

    def test_a_job_runs_the_schema_upgrade_with_the_database_url(self) -> None:
        job = manifest("Job")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["db", "upgrade", "--config", CONFIG_MOUNT]
        assert {e["name"] for e in container["env"]} == {"GATEWAY_DATABASE_URL", "GATEWAY_AMQP_URL"}
        assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


class TestContainerfile:
    def test_python_3_11_slim_non_root_and_serves_the_mounted_folder(self) -> None:
        instructions = containerfile_instructions()
        assert instructions[0] == ("FROM", "python:3.11-slim")
        users = [rest for keyword, rest in instructions if keyword == "USER"]
        assert users, "no USER: the image would run as root"
        assert users[-1].split(":")[0] not in {"root", "0"}
        runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
        assert re.search(r"pip install \"?\.(\[[a-z,]+\])?\"?", runs)
        entrypoint = exec_form(dict(instructions)["ENTRYPOINT"])
        command = exec_form(dict(instructions)["CMD"])
        assert entrypoint + command == ["gateway", "serve", "--config", CONFIG_MOUNT]

    def test_it_copies_every_package_pip_installs(self) -> None:
        pyproject = (ROOT / "pyproject.toml").read_text()
        include = re.search(r"include = \[([^\]]*)\]", pyproject)
        assert include is not None
        packages = {p.strip().strip('"').rstrip("*") for p in include.group(1).split(",")}
        copied = {
            rest.split()[0].rstrip("/") for keyword, rest in containerfile_instructions() if keyword == "COPY"
        }
        assert packages <= copied
        assert "pyproject.toml" in " ".join(
            copied | {r for k, r in containerfile_instructions() if k == "COPY"}
        )


class TestSystemdUnit:
    def test_hardened_own_user_restart_on_failure(self) -> None:
        service = unit_entries()["Service"]
        assert service["User"][0] not in {"root", "0"}
        assert service["ProtectSystem"] == ["strict"]
        assert service["NoNewPrivileges"] == ["yes"]
        assert service["Restart"] == ["on-failure"]
        assert service["PrivateTmp"] == ["yes"]
        assert service["CapabilityBoundingSet"] == [""]
        writable = " ".join(service["ReadWritePaths"]).split()
        assert writable == [f"/var/lib/{service['StateDirectory'][0]}"]
        command = shlex.split(service["ExecStart"][0])
        assert command[1:] == ["serve", "--config", CONFIG_MOUNT]
        assert unit_entries()["Install"]["WantedBy"] == ["multi-user.target"]

    def test_systemd_analyze_verify_accepts_it(self, tmp_path: Path) -> None:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze not installed (apt-get install systemd)")
        # verify checks that ExecStart exists: point it at this checkout's gateway script.
        script = ROOT / ".venv" / "bin" / "gateway"
        if not script.is_file():
            pytest.skip(f"{script} not found: the unit's ExecStart cannot be checked here")
        original = shlex.split(unit_entries()["Service"]["ExecStart"][0])[0]
        unit = tmp_path / UNIT.name
        unit.write_text(UNIT.read_text().replace(original, str(script)))
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert UNIT.name not in result.stderr, result.stderr  # no warning about our unit
