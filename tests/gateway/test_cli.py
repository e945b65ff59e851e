"""The ``gateway`` command: --help everywhere, audit verify, keys."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.audit import AuditEvent
from gateway.cli import build_parser, main
from gateway.crypto import Keyring, Sealed
from gateway.store.sqlite import SCHEMA
from gateway.store.sqlite_common import append_audit
from tests.support import write_deployment

COMMANDS = [
    ["serve"],
    ["demo"],
    ["demo-receiver"],
    ["audit"],
    ["audit", "verify"],
    ["dead-letters"],
    ["dead-letters", "list"],
    ["dead-letters", "replay"],
    ["dead-letters", "replay-original"],
    ["dead-letters", "discard"],
    ["keys"],
    ["keys", "generate"],
    ["keys", "rotate"],
    ["keys", "add"],
    ["keys", "activate"],
    ["keys", "rewrap"],
]


class TestHelp:
    @pytest.mark.parametrize("command", [[], *COMMANDS])
    def test_every_command_has_help(self, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args([*command, "--help"])
        assert info.value.code == 0
        assert "usage: gateway" in capsys.readouterr().out

    def test_entry_point_runs_as_a_module(self) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, check=True
        )
        assert "serve" in out.stdout


class TestAuditVerify:
    def test_missing_database_is_a_clear_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cfg = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        assert main(["audit", "verify", "--config", str(cfg)]) == 2
        assert "no database yet" in capsys.readouterr().err

    def test_exit_1_when_the_chain_is_broken(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cfg = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        # A started-and-stopped gateway leaves a one-record chain.
        assert main(["keys", "generate", "--keyring", str(cfg / "data" / "keyring.json")]) == 0
        db = sqlite3.connect(cfg / "data" / "gateway.db", isolation_level=None)
        db.executescript(SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        append_audit(db, [AuditEvent("gateway.started"), AuditEvent("gateway.started")])
        db.execute("COMMIT")
        assert main(["audit", "verify", "--config", str(cfg), "--json"]) == 0
        assert '"ok": true' in capsys.readouterr().out
        db.executescript("DROP TRIGGER audit_no_update; UPDATE audit SET actor='someone-else' WHERE seq=1;")
        db.close()
        assert main(["audit", "verify", "--config", str(cfg)]) == 1
        assert "BROKEN  seq 1" in capsys.readouterr().out


class TestKeys:
    def test_rotate_then_rewrap(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        cfg = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        ring_path = cfg / "data" / "keyring.json"
        assert main(["keys", "generate", "--keyring", str(ring_path)]) == 0
        old = Keyring.load(ring_path)
        db = sqlite3.connect(cfg / "data" / "gateway.db", isolation_level=None)
        db.executescript(SCHEMA)
        sealed = old.seal(b"{}", "msg_1")
        db.execute(
            "INSERT INTO messages VALUES ('msg_1','p','e','safeguarding',1.0,'h',?,?,'[]')",
            (sealed.key_id, sealed.blob),
        )
        db.close()
        assert main(["keys", "rotate", "--config", str(cfg)]) == 0
        assert main(["keys", "rewrap", "--config", str(cfg)]) == 0
        assert "re-encrypted 1 payload(s)" in capsys.readouterr().out
        new = Keyring.load(ring_path)
        db = sqlite3.connect(cfg / "data" / "gateway.db")
        kid, blob = db.execute("SELECT key_id, payload FROM messages").fetchone()
        db.close()
        assert kid == new.active != old.active
        assert new.open(Sealed(kid, blob), "msg_1") == b"{}"

    def test_staged_rotation_never_leaves_a_process_without_the_sealing_key(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cfg = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        ring_path = cfg / "data" / "keyring.json"
        assert main(["keys", "generate", "--keyring", str(ring_path)]) == 0
        capsys.readouterr()
        before = Keyring.load(ring_path)  # a process started before the rotation

        # Step 1: the new key is added but not used yet
        assert main(["keys", "add", "--config", str(cfg)]) == 0
        new_id = capsys.readouterr().out.split()[2]
        restarted = Keyring.load(ring_path)  # a process restarted after step 1
        assert restarted.active == before.active
        assert new_id in restarted.key_ids
        assert before.open(restarted.seal(b"step 1", "msg_1"), "msg_1") == b"step 1"

        # Step 2: once every process holds it, it becomes the sealing key
        assert main(["keys", "activate", new_id, "--config", str(cfg)]) == 0
        after = Keyring.load(ring_path)
        assert after.active == new_id
        assert restarted.open(after.seal(b"step 2", "msg_2"), "msg_2") == b"step 2"

    def test_activating_an_unknown_key_is_refused_and_changes_nothing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cfg = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        ring_path = cfg / "data" / "keyring.json"
        assert main(["keys", "generate", "--keyring", str(ring_path)]) == 0
        text = ring_path.read_text()
        assert main(["keys", "activate", "k-not-a-key", "--config", str(cfg)]) == 2
        assert "'k-not-a-key' is not in the keyring" in capsys.readouterr().err
        assert ring_path.read_text() == text
