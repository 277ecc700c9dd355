"""The signature gate on manifest pulls: the policy a repository is under, what its mode asks
for, and the memory of digests found signed. The checks themselves are
`dockyard.service.signature_check`, loaded with the cryptography they need only when a
repository under a policy is pulled: a registry without policies never loads them.

Only positive results are remembered, per (repository, digest, policy version): a signature
that arrives is seen by the next pull on every worker, and an edited policy has a new version.
A remembered result keeps what it rests on (the signature manifest, by the `.sig` tag or as a
referrer, and the signed index for a child), resolved again on every pull in the same metadata
read as the policy: a removed signature stops counting at once on every worker and replica, and
a signed pull costs that read, never a verification. A remembered result lasts
`REMEMBERED_SECONDS` at most.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import ManifestRecord
from dockyard.service.signature_status import SignatureStatuses

if TYPE_CHECKING:
    from dockyard.metadata.base import SignaturePolicy
    from dockyard.service.repository import Repository
    from dockyard.service.signature_check import Evidence, SignatureChecker
    from dockyard.service.signature_policy import SignaturePolicyService
    from dockyard.service.signature_status import SignatureStatus

log = logging.getLogger("dockyard.signatures")

REMEMBERED_SECONDS = 60.0


class SignatureGate:
    def __init__(self, policies: SignaturePolicyService) -> None:
        self.policies = policies
        # (repository, digest) -> (policy version, evidence)
        self._verified: BoundedCache[tuple[str, str], tuple[str, Evidence]] = BoundedCache(
            50_000, max_age=REMEMBERED_SECONDS
        )
        self._checker: SignatureChecker | None = None
        self._statuses = SignatureStatuses(lambda: self.checker)

    @property
    def checker(self) -> SignatureChecker:
        if self._checker is None:
            from dockyard.service.signature_check import SignatureChecker

            self._checker = SignatureChecker(
                lambda key, evidence: self._verified.put((key[0], key[1]), (key[2], evidence))
            )
        return self._checker

    async def admit(
        self, repository: Repository, reference: str, record: ManifestRecord
    ) -> str | None:
        """None when the manifest may be served as it is; the Warning header to add when the
        policy only warns; DENIED when it enforces and no valid signature is found."""
        return (await self.check(repository, reference, record))[0]

    async def check(
        self, repository: Repository, reference: str, record: ManifestRecord
    ) -> tuple[str | None, bool]:
        """What `admit` answers, and whether a policy judged the manifest: a verdict may rest
        on more than the metadata store (a certificate's validity period, the minute a
        verification is remembered), so an answer judged by one is never replayed."""
        key = (repository.name, record.digest)
        remembered = self._verified.get(key)
        # The first reference a remembered result rests on is resolved with the policy, in
        # the same read: the common case, a signed image pulled again, costs that one read.
        first = remembered[1][0][0] if remembered is not None else None
        policy, found = await self.policies.policy_and_manifest(repository.name, first)
        if policy is None or policy.mode == "off":
            return None, False
        return await self._judge(
            repository, reference, record, policy, key, remembered, found
        ), True

    async def _judge(
        self,
        repository: Repository,
        reference: str,
        record: ManifestRecord,
        policy: SignaturePolicy,
        key: tuple[str, str],
        remembered: tuple[str, Evidence] | None,
        found: str | None,
    ) -> str | None:
        checker = self.checker
        if remembered is not None:
            version, evidence = remembered
            if (
                version == policy.version
                and found == evidence[0][1]
                and await checker.still_holds(repository, evidence[1:])
            ):
                return None
            self._verified.pop(key)
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

    async def statuses(self, repository: Repository, reference: str) -> list[SignatureStatus]:
        """Each signature and attestation of the manifest, with its status under the policy the
        repository is under (the image page shows them)."""
        record, _ = await repository.manifests.get(reference)
        policy = await self.policies.policy_for(repository.name)
        return await self._statuses.of(repository, record, policy)
