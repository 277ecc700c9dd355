"""Builds the access gate and token issuer for a registry whose settings turn accounts on."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.auth.gate import AccessGate
from dockyard.auth.issuer import TokenIssuer
from dockyard.auth.tokens import TokenAuthority, load_or_create_key
from dockyard.service.registry import Registry

AUTH_FOLDER = "auth"


@dataclass
class Auth:
    gate: AccessGate
    issuer: TokenIssuer
    tokens: TokenAuthority


def build_auth(registry: Registry) -> Auth:
    settings = registry.settings
    key = load_or_create_key(settings.data_dir / AUTH_FOLDER)
    tokens = TokenAuthority(
        key,
        issuer=settings.token_service,
        service=settings.token_service,
        access_ttl=settings.token_ttl_seconds,
        refresh_ttl=settings.refresh_token_ttl_seconds,
    )
    gate = AccessGate(settings, registry.accounts, tokens, registry.counters, registry.proxy)
    return Auth(gate, TokenIssuer(gate), tokens)
