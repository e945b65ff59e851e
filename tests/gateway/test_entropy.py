"""Buffered CSPRNG bytes: never the same bytes twice, in this process or a forked child."""

from __future__ import annotations

import os
import warnings

from gateway.entropy import random_bytes


def test_values_never_repeat_across_refills() -> None:
    values = [random_bytes(12) for _ in range(5_000)]  # about fifteen 4 KiB refills
    assert len(set(values)) == len(values)
    assert {len(v) for v in values} == {12}


def test_a_large_request_is_served_whole() -> None:
    assert len(random_bytes(10_000)) == 10_000


def test_a_forked_child_does_not_reuse_the_parents_buffered_bytes() -> None:
    random_bytes(1)  # the parent now holds a buffer of bytes it has not handed out
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on newer Pythons
        pid = os.fork()
    if pid == 0:  # the child: report what it would hand out next, then leave at once
        os.write(write_fd, random_bytes(64))
        os._exit(0)
    os.close(write_fd)
    child = b""
    while len(child) < 64:
        chunk = os.read(read_fd, 64)
        assert chunk, "the child exited without answering"
        child += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    parent = random_bytes(64)
    assert child != parent
