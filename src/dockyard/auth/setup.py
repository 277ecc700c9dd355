"""Builds the access gate and token issuer for a registry whose settings turn accounts on."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.gate import AccessGate
from dockyard.auth.issuer import TokenIssuer
from dockyard.auth.tokens import TokenAuthority, key_from_pem, load_or_create_key, new_key_pem
from dockyard.proxy import cache_of
from dockyard.service.registry import Registry

AUTH_FOLDER = "auth"


@dataclass
class Auth:
    gate: AccessGate
    issuer: TokenIssuer
    tokens: TokenAuthority


SIGNING_KEY = "token-signing-key"


async def signing_key(registry: Registry) -> ec.EllipticCurvePrivateKey:
    """Replicas sharing a database share its key (the first to start makes it); a lone
    registry keeps its key in the data folder."""
    if registry.meta.shared:
        return key_from_pem(await registry.meta.secret(SIGNING_KEY, new_key_pem))
    return load_or_create_key(registry.settings.data_dir / AUTH_FOLDER)


async def build_auth(registry: Registry) -> Auth:
    settings = registry.settings
    key = await signing_key(registry)
    tokens = TokenAuthority(
        key,
        issuer=settings.token_service,
        service=settings.token_service,
        access_ttl=settings.token_ttl_seconds,
        refresh_ttl=settings.refresh_token_ttl_seconds,
    )
    gate = AccessGate(settings, registry.accounts, tokens, registry.counters, cache_of(registry))
    return Auth(gate, TokenIssuer(gate), tokens)
