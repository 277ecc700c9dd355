"""The signature gate on manifest pulls: the policy a repository is under, what its mode asks
for, and the memory of digests found signed. The checks themselves are
`dockyard.service.signature_check`, loaded with the cryptography they need only when a
repository under a policy is pulled: a registry without policies never loads them.

Only positive results are remembered, per (repository, digest, policy version): a signature
that arrives is seen by the next pull on every worker, and an edited policy has a new version.
A remembered result lasts `REMEMBERED_SECONDS`, the longest a removed signature still counts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import ManifestRecord

if TYPE_CHECKING:
    from dockyard.service.repository import Repository
    from dockyard.service.signature_check import SignatureChecker
    from dockyard.service.signature_policy import SignaturePolicyService

log = logging.getLogger("dockyard.signatures")

REMEMBERED_SECONDS = 60.0


class SignatureGate:
    def __init__(self, policies: SignaturePolicyService) -> None:
        self.policies = policies
        self._verified: BoundedCache[tuple[str, str, str], bool] = BoundedCache(
            50_000, max_age=REMEMBERED_SECONDS
        )
        self._checker: SignatureChecker | None = None

    @property
    def checker(self) -> SignatureChecker:
        if self._checker is None:
            from dockyard.service.signature_check import SignatureChecker

            self._checker = SignatureChecker(lambda key: self._verified.put(key, True))
        return self._checker

    async def admit(
        self, repository: Repository, reference: str, record: ManifestRecord
    ) -> str | None:
        """None when the manifest may be served as it is; the Warning header to add when the
        policy only warns; DENIED when it enforces and no valid signature is found."""
        policy = await self.policies.policy_for(repository.name)
        if policy is None or policy.mode == "off":
            return None
        # The common case, a signed image pulled again: one memory lookup, nothing parsed.
        if self._verified.get((repository.name, record.digest, policy.version)):
            return None
        checker = self.checker
        if await checker.is_artifact(repository, reference, record):
            return None
        if await checker.signed(repository, record, policy):
            return None
        message = (
            f"{repository.name}@{record.digest} has no valid signature required by the "
            f"signature policy on {policy.scope}"
        )
        if policy.mode == "warn":
            log.warning("served unsigned: %s", message)
            return f'299 - "{message}"'
        raise RegistryError(
            ErrorCode.DENIED,
            message,
            detail={"policy": policy.scope, "digest": record.digest},
        )
