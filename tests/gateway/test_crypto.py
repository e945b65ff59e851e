"""Encryption at rest: AES-GCM with key ids, rotation without re-encryption, keyed pseudonyms."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from gateway.config import load_deployment
from gateway.crypto import Keyring, UnknownKey, generate_keyring, rotate_keyring
from gateway.delivery.dispatcher import PartnerWorker
from gateway.errors import ConfigError, PermanentDeliveryError, RetryableDeliveryError
from gateway.metrics import Metrics
from gateway.store.base import Lease
from tests.support import write_deployment


class TestKeyring:
    def test_seal_and_open(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring(path)
        ring = Keyring.load(path)
        sealed = ring.seal(b"child data", "msg_1")
        assert b"child data" not in sealed.blob
        assert sealed.key_id == ring.active
        assert ring.open(sealed, "msg_1") == b"child data"

    def test_ciphertext_is_bound_to_its_record(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring(path)
        ring = Keyring.load(path)
        with pytest.raises(InvalidTag):
            ring.open(ring.seal(b"x", "msg_1"), "msg_2")

    def test_rotation_keeps_old_records_readable(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        first = generate_keyring(path)
        old = Keyring.load(path).seal(b"before rotation", "r1")
        second = rotate_keyring(path)
        ring = Keyring.load(path)
        assert (ring.active, old.key_id) == (second, first)
        assert ring.open(old, "r1") == b"before rotation"
        assert ring.seal(b"after", "r2").key_id == second

    def test_keyring_file_is_private_and_never_overwritten(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(ConfigError, match="refusing to overwrite"):
            generate_keyring(path)

    def test_missing_or_broken_keyring_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="keyring file not found"):
            Keyring.load(tmp_path / "none.json")
        (tmp_path / "bad.json").write_text("{}")
        with pytest.raises(ConfigError, match="not a valid keyring"):
            Keyring.load(tmp_path / "bad.json")

    def test_pseudonyms_are_stable_and_keyed(self, tmp_path: Path) -> None:
        generate_keyring(tmp_path / "a.json")
        generate_keyring(tmp_path / "b.json")
        a, b = Keyring.load(tmp_path / "a.json"), Keyring.load(tmp_path / "b.json")
        assert a.pseudonym("nhs-number:9990000018") == a.pseudonym("nhs-number:9990000018")
        assert a.pseudonym("nhs-number:9990000018") != b.pseudonym("nhs-number:9990000018")
        assert "9990000018" not in a.pseudonym("nhs-number:9990000018")
        assert "keys=" in repr(a)
        assert "pseudonym" not in repr(a)


class TestRotationAcrossInstances:
    """One instance rotates; another still runs the old keyring until it is restarted."""

    def test_an_unknown_key_id_is_its_own_error(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring(path)
        stale = Keyring.load(path)
        rotate_keyring(path)
        sealed = Keyring.load(path).seal(b"sealed by the rotated instance", "dlv_1")
        with pytest.raises(UnknownKey, match="restart it"):
            stale.open(sealed, "dlv_1")
        assert issubclass(UnknownKey, ConfigError)

    def test_delivery_retries_instead_of_dead_lettering(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring(path)
        stale = Keyring.load(path)
        rotate_keyring(path)
        fresh = Keyring.load(path)
        lease = Lease(
            "dlv_1", "msg_1", "csc", 1, 8, "application/json", fresh.seal(b"{}", "dlv_1"), "t", 0.0, 0.0
        )
        partner = load_deployment(write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9"))
        worker = PartnerWorker(partner.partners["csc-northshire"], None, stale, Metrics())  # type: ignore[arg-type]
        with pytest.raises(RetryableDeliveryError) as info:
            worker._open(lease)
        assert info.value.code == "payload-key-unknown"
        # An altered record stays permanent: retrying cannot help
        altered = Lease(
            "dlv_1", "msg_1", "csc", 1, 8, "application/json", stale.seal(b"{}", "dlv_2"), "t", 0.0, 0.0
        )
        with pytest.raises(PermanentDeliveryError):
            worker._open(altered)
