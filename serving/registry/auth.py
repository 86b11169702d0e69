"""Bearer tokens -> identity and role, read from a token file.

The file has one token per line: ``TOKEN IDENTITY ROLE`` (role ``reader``, ``editor``
or ``admin``); blank lines and ``#`` comments are ignored. Readers read, editors also
register, tag, describe, move aliases and stages, admins also delete. Tokens are
compared by their sha256 digest, so a lookup never leaks timing about a stored token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from satchel.errors import RegistryAuthError, RegistryInputError

ROLES = ("reader", "editor", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Identity:
    """Who is calling and what they may do."""

    name: str
    role: str

    def require(self, role: str, action: str) -> None:
        """Raise RegistryAuthError unless this identity has at least ``role``."""
        if _RANK[self.role] < _RANK[role]:
            raise RegistryAuthError(
                f"{self.name} ({self.role}) may not {action}: it needs the {role} role",
                missing_identity=False,
            )


ANONYMOUS_ADMIN = Identity("anonymous", "admin")


class TokenTable:
    """The identities a server accepts; an empty table (no token file) lets every caller
    in as ``anonymous`` with the admin role (for a loopback, single-user server)."""

    def __init__(self, entries: dict[str, Identity] | None = None) -> None:
        self._by_digest = {_digest(t): i for t, i in (entries or {}).items()}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> TokenTable:
        """Parse a token file; errors name the line, never the token."""
        entries: dict[str, Identity] = {}
        try:
            text = open(path, encoding="utf-8").read()
        except OSError as exc:
            raise RegistryInputError(f"cannot read the token file: {exc.strerror}",
                                     field="auth_token_file") from None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3 or parts[2] not in ROLES:
                raise RegistryInputError(
                    f"token file line {number}: expected 'TOKEN IDENTITY ROLE' with ROLE one "
                    f"of {', '.join(ROLES)}",
                    field="auth_token_file",
                )
            token, name, role = parts
            if len(token) < 16:
                raise RegistryInputError(
                    f"token file line {number}: tokens must be at least 16 characters",
                    field="auth_token_file",
                )
            entries[token] = Identity(name, role)
        if not entries:
            raise RegistryInputError("the token file holds no tokens", field="auth_token_file")
        return cls(entries)

    def identify(self, authorization: str | None) -> Identity:
        """The identity for an ``Authorization`` header value."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        if not authorization:
            raise RegistryAuthError(
                "this registry needs a bearer token (Authorization: Bearer TOKEN)",
                missing_identity=True,
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            raise RegistryAuthError(
                "the Authorization header must be 'Bearer TOKEN'", missing_identity=True
            )
        wanted = _digest(token.strip())
        for digest, identity in self._by_digest.items():
            if hmac.compare_digest(digest, wanted):
                return identity
        raise RegistryAuthError("the bearer token is not known to this registry",
                                missing_identity=True)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
