"""Bearer-token authentication. Tokens are compared as SHA-256 digests: the configuration
holds only digests, never tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from aiohttp import web

from gateway.errors import AuthError, Forbidden


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_digest(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("send 'Authorization: Bearer <token>' with the token issued to your system")
    return token_digest(token.strip())


class Authenticator:
    """Maps token digests to partner ids and operator (id, role) pairs.

    Look-ups are dictionary hits on a SHA-256 of a high-entropy token, so timing reveals
    nothing useful about other tokens.
    """

    def __init__(self, partners: Mapping[str, str], operators: Mapping[str, tuple[str, str]]) -> None:
        self._partners = dict(partners)
        self._operators = dict(operators)

    def partner(self, request: web.Request) -> str:
        digest = bearer_digest(request)
        partner = self._partners.get(digest)
        if partner is None:
            raise AuthError("the bearer token does not belong to a partner of this gateway")
        return partner

    def operator(self, request: web.Request, roles: frozenset[str]) -> str:
        digest = bearer_digest(request)
        found = self._operators.get(digest)
        if found is None:
            if digest in self._partners:
                raise Forbidden("partner systems cannot use the operations API")
            raise AuthError("the bearer token does not belong to an operator of this gateway")
        operator_id, role = found
        if role not in roles:
            raise Forbidden(f"the role {role} cannot do this; it needs one of: {', '.join(sorted(roles))}")
        return operator_id
