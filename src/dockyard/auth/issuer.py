"""The token endpoint's logic: from credentials and requested scopes to a signed token.

Granted scopes are the intersection of what was asked and what the account may do; asking for
more is not an error, the token simply carries less (the registry then answers 401 or 403).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dockyard.auth.gate import TOKEN_PASSWORD_SECONDS, AccessGate
from dockyard.auth.scopes import Scope, parse_scopes
from dockyard.auth.tokens import REFRESH, InvalidToken
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.accounts import ANONYMOUS, Principal


class TokenIssuer:
    def __init__(self, gate: AccessGate) -> None:
        self.gate = gate
        self.tokens = gate.tokens
        self.accounts = gate.accounts

    def _unauthorized(self, message: str) -> RegistryError:
        return RegistryError(ErrorCode.UNAUTHORIZED, message)

    async def _grant(self, principal: Principal, requested: list[Scope]) -> list[Scope]:
        granted = []
        for scope in requested:
            if scope.type == "registry":
                if scope.actions:
                    granted.append(scope)
                continue
            actions = await self.gate.actions_for(principal, scope.name) & scope.actions
            if actions:
                granted.append(Scope(scope.type, scope.name, frozenset(actions)))
        return granted

    async def _respond(
        self,
        principal: Principal,
        scope_params: list[str],
        service: str | None,
        offline: bool,
        refresh_token: str | None = None,
    ) -> dict[str, Any]:
        if service and service != self.tokens.service:
            raise RegistryError(
                ErrorCode.DENIED, f"this token service is {self.tokens.service!r}, not {service!r}"
            )
        granted = await self._grant(principal, parse_scopes(scope_params))
        now = time.time()
        token = self.tokens.issue_access(
            principal.name, granted, now, principal.credential, principal.stamp
        )
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.tokens.access_ttl,
            "issued_at": datetime.fromtimestamp(int(now), UTC).isoformat().replace("+00:00", "Z"),
            "scope": " ".join(str(s) for s in granted),
        }
        if offline and not principal.anonymous:
            body["refresh_token"] = refresh_token or self.tokens.issue_refresh(
                principal.name,
                principal.credential,
                now,
                principal.stamp[:1] if principal.stamp is not None else None,
            )
        return body

    async def with_basic(
        self,
        username: str | None,
        password: str | None,
        address: str,
        scope_params: list[str],
        service: str | None,
        offline: bool,
    ) -> dict[str, Any]:
        """GET /token: Basic credentials (or none, for an anonymous token)."""
        principal = ANONYMOUS
        if username is not None:
            found = await self.gate.login(
                username, password or "", address, remember_seconds=TOKEN_PASSWORD_SECONDS
            )
            if found is None:
                raise self._unauthorized("incorrect username or password")
            principal = found
        return await self._respond(principal, scope_params, service, offline)

    async def with_form(
        self, form: dict[str, str], scope_params: list[str], address: str
    ) -> dict[str, Any]:
        """POST /token: the OAuth2 password and refresh_token grants docker uses."""
        grant = form.get("grant_type")
        offline = form.get("access_type") == "offline"
        service = form.get("service")
        if grant == "password":
            principal = await self.gate.login(
                form.get("username", ""),
                form.get("password", ""),
                address,
                remember_seconds=TOKEN_PASSWORD_SECONDS,
            )
            if principal is None:
                raise self._unauthorized("incorrect username or password")
            return await self._respond(principal, scope_params, service, offline)
        if grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            try:
                claims = self.tokens.verify(refresh, REFRESH)
            except InvalidToken:
                raise self._unauthorized("the refresh token is invalid or expired") from None
            principal = await self.accounts.principal(
                claims.subject, claims.credential, issued_at=claims.issued_at, stamp=claims.stamp
            )
            if principal is None:
                raise self._unauthorized("the refresh token was revoked")
            return await self._respond(principal, scope_params, service, True, refresh)
        raise RegistryError(
            ErrorCode.PARAMETER_UNSUPPORTED, "grant_type must be password or refresh_token"
        )
