"""Configure once, freeze, then serve: a bad file stops start-up naming the file, the path
inside it and the rule broken."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from gateway.config import Secret, load_deployment
from gateway.errors import ConfigError
from tests.support import write_deployment


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")


def edit(path: Path, fn: object) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(doc))


class TestLoadDeployment:
    def test_the_example_loads(self, config: Path) -> None:
        dep = load_deployment(config)
        assert set(dep.partners) == {
            "police-northshire",
            "school-riverside-primary",
            "csc-northshire",
            "health-visiting-northshire",
            "ed-northshire-general",
            "gp-riverside-surgery",
            "sexual-health-northshire",
            "la-northshire-inclusion",
            "virtual-school-northshire",
            "marac-northshire",
            "idva-northshire",
        }
        webhooks = {pid for pid, p in dep.partners.items() if p.delivery.mode == "webhook"}
        assert webhooks == {"school-riverside-primary", "csc-northshire"}
        assert dep.partners["csc-northshire"].delivery.settings.max_attempts == 4
        assert repr(dep.partners["csc-northshire"].delivery.secret) == "Secret('**********')"

    def test_schema_error_names_file_path_and_rule(self, config: Path) -> None:
        edit(config / "partners.yaml", lambda d: d["partners"][1]["delivery"].update(mode="carrier-pigeon"))
        with pytest.raises(ConfigError) as info:
            load_deployment(config)
        assert "partners.yaml" in info.value.detail
        assert "/partners/1/delivery/mode" in info.value.detail
        assert "(enum)" in info.value.detail

    def test_reference_error_names_file_path_and_rule(self, config: Path) -> None:
        edit(config / "agreements.yaml", lambda d: d["agreements"][0]["flows"][0].update(to=["ghost"]))
        with pytest.raises(
            ConfigError, match=r"agreements.yaml: /agreements/0/flows/0/to/0 \(known-partner\)"
        ):
            load_deployment(config)

    def test_yaml_syntax_error_gives_the_line(self, config: Path) -> None:
        (config / "routes.yaml").write_text("routes: [\n  - {event_types: [x]\n")
        with pytest.raises(ConfigError, match=r"routes.yaml: line \d+"):
            load_deployment(config)

    def test_webhook_partner_needs_a_secret(self, config: Path) -> None:
        (config / "secrets.yaml").write_text("webhook_secrets: {}\n")
        with pytest.raises(ConfigError, match="webhook-secret"):
            load_deployment(config)

    def test_secret_from_environment(self, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (config / "secrets.yaml").write_text("webhook_secrets: {}\n")
        monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_SCHOOL_RIVERSIDE_PRIMARY", "whsec_" + "A" * 32)
        monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_CSC_NORTHSHIRE", "whsec_" + "B" * 32)
        secret = load_deployment(config).partners["csc-northshire"].delivery.secret
        assert isinstance(secret, Secret)
        assert secret.reveal() == "whsec_" + "B" * 32

    def test_cli_serve_refuses_a_bad_config_with_exit_2(
        self, config: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        edit(config / "gateway.yaml", lambda d: d["listen"].update(port="eighty"))
        assert main(["serve", "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert "gateway.yaml: /listen/port (type)" in err
