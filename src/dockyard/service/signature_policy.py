"""Signature policies: which keys (cosign) and trust-store roots (notation) a repository's
manifests must be signed under before they are served, set per namespace or repository by its
owners, checked here before anything is stored."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.metadata.base import AuditEntry, MetadataStore, SignaturePolicy
from dockyard.service.audit import AuditService

MODES = ("enforce", "warn", "off")
# A policy names a handful of signers; these bounds keep a stored policy (read on every pull)
# small whatever a caller sends.
MAX_KEYS = 32
MAX_ROOTS = 64
MAX_PEM_CHARS = 16 * 1024


def _bad(message: str) -> RegistryError:
    return RegistryError(ErrorCode.BAD_REQUEST, message)


def _pem_texts(kind: str, texts: Sequence[object], limit: int) -> list[str]:
    if len(texts) > limit:
        raise _bad(f"a signature policy names at most {limit} {kind}s")
    checked = []
    for number, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            raise _bad(f"{kind} {number} is not PEM text")
        if len(text) > MAX_PEM_CHARS:
            raise _bad(f"{kind} {number} is longer than {MAX_PEM_CHARS} characters")
        checked.append(text.strip() + "\n")
    return checked


def checked_keys(texts: Sequence[object]) -> list[str]:
    """Each text a PEM public key dockyard can verify cosign signatures with."""
    from dockyard.core import keys  # cryptography: loaded only when a policy is set

    checked = _pem_texts("key", texts, MAX_KEYS)
    for number, text in enumerate(checked, 1):
        try:
            keys.load_public_key(text.encode())
        except (keys.KeyMaterialError, ValueError) as exc:
            raise _bad(f"key {number} is not a public key: {exc}") from None
    return checked


def checked_roots(texts: Sequence[object]) -> list[str]:
    """Each text one PEM X.509 certificate (a notation trust-store root)."""
    from cryptography import x509

    checked = _pem_texts("root", texts, MAX_ROOTS)
    for number, text in enumerate(checked, 1):
        try:
            x509.load_pem_x509_certificate(text.encode())
        except ValueError:
            raise _bad(f"root {number} is not a PEM X.509 certificate") from None
    return checked


def checked_policy(
    scope: str, public_keys: Sequence[object], roots: Sequence[object], mode: str
) -> SignaturePolicy:
    """A policy as stored: a valid scope and mode, at least one key or root, every one
    readable; a fresh version."""
    scope = validate_name(scope)
    if mode not in MODES:
        raise _bad(f"mode {str(mode)[:20]!r} is not one of {', '.join(MODES)}")
    checked_keys_ = checked_keys(public_keys)
    checked_roots_ = checked_roots(roots)
    if not checked_keys_ and not checked_roots_:
        raise _bad("a signature policy names at least one public key or trust-store root")
    return SignaturePolicy(
        scope=scope,
        mode=mode,
        public_keys=tuple(checked_keys_),
        roots=tuple(checked_roots_),
        version=secrets.token_hex(16),
        updated_at=time.time(),
    )


class SignaturePolicyService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self.audit = AuditService(meta)

    async def set(
        self, scope: str, public_keys: Sequence[object], roots: Sequence[object], mode: str
    ) -> SignaturePolicy:
        """Replace the scope's policy; the new version makes every remembered result stale."""
        policy = checked_policy(scope, public_keys, roots, mode)
        detail = {"mode": policy.mode, "keys": len(policy.public_keys), "roots": len(policy.roots)}
        await self.meta.set_signature_policy(policy, audit=self._entry(policy.scope, detail))
        return policy

    async def remove(self, scope: str) -> bool:
        return await self.meta.remove_signature_policy(
            validate_name(scope), audit=self._entry(scope, {"removed": True})
        )

    def _entry(self, scope: str, detail: dict[str, object]) -> AuditEntry:
        return self.audit.entry(
            "policy.signature", scope, repository=scope if "/" in scope else None, detail=detail
        )

    async def policies(self, scope: str) -> list[SignaturePolicy]:
        return await self.meta.signature_policies(validate_name(scope))

    async def policy_for(self, repository: str) -> SignaturePolicy | None:
        return await self.meta.signature_policy_for(repository)

    async def policy_and_manifest(
        self, repository: str, reference: str | None
    ) -> tuple[SignaturePolicy | None, str | None]:
        """The policy, and the digest `reference` resolves to in the repository (one read)."""
        return await self.meta.signature_policy_and_manifest(repository, reference)
