"""Random bytes for AES-GCM nonces and id suffixes, from ``os.urandom`` in 4 KiB reads.

Each accepted message needs eight small random values (five ids, three nonces). Asked of
``os.urandom`` one by one, each is a ``getrandom`` system call that also releases the GIL,
and under load the event loop then waits for the SQLite writer thread to hand the GIL
back. Reading 4 KiB at a time makes that one call per few hundred values.

The bytes are the kernel's CSPRNG output all the same; neither use needs them secret, only
unique (a nonce is stored beside its ciphertext; an id is not a credential). What MUST NOT
happen is two processes handing out the same buffered bytes: a child created by ``fork``
starts with an empty buffer (``os.register_at_fork``). Thread-safe.
"""

from __future__ import annotations

import os
import threading

_REFILL = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self, n: int) -> bytes:
        if n > _REFILL:
            return os.urandom(n)
        with self._lock:
            end = self._offset + n
            if end > len(self._buffer):
                self._buffer, self._offset, end = os.urandom(_REFILL), 0, n
            chunk = self._buffer[self._offset : end]
            self._offset = end
            return chunk

    def forget(self) -> None:
        """Drop what is buffered (in a forked child: the parent may hand out the same bytes)."""
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG, never the same bytes twice."""
    return _pool.take(n)
