"""Server-side console sessions, kept in the gateway process's memory.

The browser holds only a random session id (256 bits) in an ``HttpOnly``,
``SameSite=Strict`` cookie (``Secure`` and ``__Host-`` prefixed behind TLS). Each session
carries its own CSRF token, checked on every POST.

Contracts:

* A session id is rotated at sign-in (no fixation) and forgotten at sign-out.
* A session ends after ``idle`` seconds without a request and after ``lifetime`` seconds in
  all; an expired id is treated as absent.
* Sessions MUST NOT hold message content or personal data: user id, role and tokens only.
* Memory is bounded: past ``capacity`` sessions the oldest anonymous (pre-sign-in) ones are
  dropped first.

Sessions do not survive a restart and are not shared between instances: behind a load
balancer use sticky sessions or an identity provider (docs/console.md, "OIDC").
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Session:
    sid: str
    csrf: str
    created: float
    seen: float
    user: str | None = None
    role: str | None = None
    flash: list[str] = field(default_factory=list)
    """One-shot notices for the next page ("dead letter replayed"); ids only."""


class SessionStore:
    def __init__(
        self,
        *,
        idle: float,
        lifetime: float,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle
        self._lifetime = lifetime
        self._capacity = capacity
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def new(self) -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[s.sid] = s
        self._evict()
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._sessions.get(sid)
        if s is None:
            return None
        now = self._clock()
        if now - s.seen > self._idle or now - s.created > self._lifetime:
            del self._sessions[sid]
            return None
        s.seen = now
        self._sessions.move_to_end(sid)
        return s

    def sign_in(self, old: Session | None, user: str, role: str) -> Session:
        """A fresh session (new id and CSRF token) for the user; the old one is dropped."""
        if old is not None:
            self._sessions.pop(old.sid, None)
        s = self.new()
        s.user, s.role = user, role
        return s

    def end(self, session: Session) -> None:
        self._sessions.pop(session.sid, None)

    def end_user(self, user: str) -> int:
        """Forget every session of a user (e.g. their role changed); how many ended."""
        gone = [sid for sid, s in self._sessions.items() if s.user == user]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)

    def _evict(self) -> None:
        if len(self._sessions) <= self._capacity:
            return
        for sid in [sid for sid, s in self._sessions.items() if s.user is None]:
            if len(self._sessions) <= self._capacity:
                return
            del self._sessions[sid]
        while len(self._sessions) > self._capacity:
            self._sessions.popitem(last=False)
