"""``gateway console hash-password``: the password from stdin, the argon2id hash on stdout."""

from __future__ import annotations

import subprocess
import sys

from gateway.console.passwords import verify


class TestHashPassword:
    def test_prints_a_hash_that_verifies_and_never_the_password(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "console", "hash-password"],
            input="Canary-Password-1\n",
            capture_output=True,
            text=True,
            check=True,
        )
        digest = done.stdout.strip()
        assert digest.startswith("$argon2id$")
        assert verify(digest, "Canary-Password-1")
        assert "Canary" not in done.stdout + done.stderr

    def test_an_empty_password_is_refused(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "console", "hash-password"],
            input="\n",
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2
        assert "1 to 1024 bytes" in done.stderr
        assert not done.stdout
