"""Configure once, freeze, then serve: a bad file stops start-up naming the file, the path
inside it and the rule broken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import create_app
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
            "police-southmoor",
            "school-hillside-academy",
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


class TestInbound:
    """partners.yaml ``inbound``: MLLP senders, folder drops and per-format adapter options."""

    def test_defaults_are_http_only(self, config: Path) -> None:
        inbound = load_deployment(config).partners["gp-riverside-surgery"].inbound
        assert (inbound.mllp, inbound.folder_drop, dict(inbound.adapter_options)) == (False, None, {})
        assert inbound.ods_code == "ZZZ97"

    def test_the_example_s_inbound_sections(self, config: Path) -> None:
        partners = load_deployment(config).partners
        assert partners["ed-northshire-general"].inbound.mllp
        drop = partners["school-riverside-primary"].inbound.folder_drop
        assert drop is not None
        assert (drop.path, drop.format) == (
            (config / "drops" / "school-riverside-primary").resolve(),
            "ctf-xml",
        )
        mapping = partners["police-southmoor"].inbound.adapter_options["police-ppn"]["field_mapping"]
        assert isinstance(mapping, dict)

    def test_folder_and_option_files_are_resolved_against_the_deployment(self, config: Path) -> None:
        (config / "mappings").mkdir(exist_ok=True)
        (config / "mappings" / "force.yaml").write_text("renames: {a: b}\n")

        def set_inbound(d: dict[str, Any]) -> None:
            d["partners"][0]["inbound"] = {
                "folder_drop": {"path": "drops/police", "format": "canonical-json"},
                "adapter_options": {
                    "police-ppn": {"field_mapping_file": "mappings/force.yaml", "strict": True}
                },
            }

        edit(config / "partners.yaml", set_inbound)
        inbound = load_deployment(config).partners["police-northshire"].inbound
        assert inbound.folder_drop is not None
        assert inbound.folder_drop.path == (config / "drops" / "police").resolve()
        assert inbound.adapter_options == {
            "police-ppn": {"field_mapping": {"renames": {"a": "b"}}, "strict": True}
        }

    def test_a_missing_option_file_names_the_path_and_rule(self, config: Path) -> None:
        edit(
            config / "partners.yaml",
            lambda d: d["partners"][0].update(
                inbound={"adapter_options": {"police-ppn": {"field_mapping_file": "nope.yaml"}}}
            ),
        )
        with pytest.raises(
            ConfigError,
            match=r"/partners/0/inbound/adapter_options/police-ppn/field_mapping_file \(file-exists\)",
        ):
            load_deployment(config)

    def test_an_mllp_sender_needs_an_ods_code(self, config: Path) -> None:
        edit(config / "partners.yaml", lambda d: d["partners"][0].update(inbound={"mllp": True}))
        with pytest.raises(ConfigError, match=r"/partners/0/inbound/mllp \(mllp-needs-ods-code\)"):
            load_deployment(config)

    def test_an_unknown_folder_format_stops_the_app(self, config: Path) -> None:
        edit(
            config / "partners.yaml",
            lambda d: d["partners"][0].update(inbound={"folder_drop": {"path": "x", "format": "telex"}}),
        )
        with pytest.raises(ConfigError, match=r"unknown-format.*folder_drop format 'telex'"):
            create_app(load_deployment(config))

    def test_options_for_a_format_without_options_stop_the_app(self, config: Path) -> None:
        edit(
            config / "partners.yaml",
            lambda d: d["partners"][0].update(inbound={"adapter_options": {"canonical-json": {"x": 1}}}),
        )
        with pytest.raises(ConfigError, match=r"adapter-options.*takes no options"):
            create_app(load_deployment(config))

    def test_two_mllp_senders_with_one_ods_code_are_refused(self, config: Path) -> None:
        def twins(d: dict[str, Any]) -> None:
            for p in d["partners"]:
                if p["id"] in {"ed-northshire-general", "gp-riverside-surgery"}:
                    p["identifiers"]["ods_code"] = "ZZZ98"
                    p["inbound"] = {"mllp": True}

        edit(config / "partners.yaml", twins)
        with pytest.raises(ConfigError, match="unique-mllp-sender"):
            create_app(load_deployment(config))

    def test_settings_for_the_listeners(self, config: Path) -> None:
        edit(
            config / "gateway.yaml",
            lambda d: d.update(
                mllp={"port": 0, "max_message_bytes": 4096},
                folder_drop={"poll_seconds": 0.5},
                identifiers={"known_la_codes": ["999", "801"]},
            ),
        )
        s = load_deployment(config).settings
        assert (s.mllp_host, s.mllp_port, s.mllp_max_message_bytes) == ("127.0.0.1", 0, 4096)
        assert s.folder_poll_seconds == 0.5
        assert s.known_la_codes == {"999", "801"}
