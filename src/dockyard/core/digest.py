"""Content digests (`algorithm:hex`) as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.core.errors import ErrorCode, RegistryError

# The digests we verify, exactly: lowercase hex of the algorithm's length. One match instead
# of a character-by-character check, as several digests are checked per request
# (bench/README.md).
_VERIFIABLE = re.compile(r"(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate; raise DIGEST_INVALID for anything we cannot verify."""
        digest = cls.try_parse(text)
        if digest is None:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID, "invalid digest", detail={"digest": text[:200]}
            )
        return digest

    @staticmethod
    def checked(text: str) -> str:
        """`text` itself once `parse` would accept it: what a lookup by digest needs, without
        building and printing a `Digest` (several per request)."""
        if not isinstance(text, str) or not _VERIFIABLE.fullmatch(text):
            raise RegistryError(
                ErrorCode.DIGEST_INVALID, "invalid digest", detail={"digest": str(text)[:200]}
            )
        return text

    @classmethod
    def try_parse(cls, text: str) -> Digest | None:
        if not isinstance(text, str) or not _VERIFIABLE.fullmatch(text):
            return None
        algorithm, _, hexpart = text.partition(":")
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


# The algorithms a client may choose for an upload (`?digest-algorithm=`), the ones verified.
ALGORITHMS = ("sha256", "sha512")


def algorithm_of(text: str | None) -> str:
    """An upload's chosen algorithm: sha256 unless named; any other name is DIGEST_INVALID."""
    if text is None:
        return "sha256"
    if text not in ALGORITHMS:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID,
            "unsupported digest algorithm: sha256 and sha512 are",
            detail={"digest-algorithm": text[:100]},
        )
    return text


# What a tag may not hold (its grammar is `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
_NOT_IN_TAG = re.compile(r"[^a-zA-Z0-9._-]")


def referrers_tag(digest: str) -> str:
    """The tag under which clients without the referrers API keep a digest's referrers, as
    the spec's Referrers Tag Schema now has it: the algorithm cut to 32 characters, `-`, the
    encoded part cut to 64, and every character a tag may not hold replaced by `-`."""
    algorithm, _, encoded = digest.partition(":")
    return _NOT_IN_TAG.sub("-", f"{algorithm[:32]}-{encoded[:64]}")


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
