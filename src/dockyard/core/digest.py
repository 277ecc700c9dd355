"""Content digests (`algorithm:hex`) as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.core.errors import ErrorCode, RegistryError

# Algorithms we can verify, with the exact length of their hex encoding.
SUPPORTED_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

# The image spec's general grammar, used to tell "malformed" from "unsupported".
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


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

    @classmethod
    def try_parse(cls, text: str) -> Digest | None:
        if not isinstance(text, str) or len(text) > 256 or not _GRAMMAR.match(text):
            return None
        algorithm, _, hexpart = text.partition(":")
        length = SUPPORTED_ALGORITHMS.get(algorithm)
        if length is None or len(hexpart) != length:
            return None
        if any(c not in "0123456789abcdef" for c in hexpart):
            return None
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
