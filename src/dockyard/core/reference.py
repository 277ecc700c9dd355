"""Image references (`[registry/]name[:tag][@digest]`), normalised exactly as docker does.

`alpine` is `docker.io/library/alpine:latest`; the first path component is a registry only when
it looks like a host (has a `.` or `:`, is `localhost`, or has upper-case letters), so `myname/app`
stays on Docker Hub while `localhost:5000/app` and `ghcr.io/owner/app` do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_LEGACY_HUB_HOSTS = frozenset({"index.docker.io", "registry-1.docker.io"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
MAX_NAME_LENGTH = 255


DOCKER_TRANSPORT = "docker://"


class InvalidReference(ValueError):
    """The text is not an image reference; the message says why."""


@dataclass(frozen=True, slots=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the registry API is actually served (Docker Hub's API lives elsewhere)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after `/manifests/`: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """The short form docker prints: `alpine:3.20`, `myname/app:1.0`."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
            if "/" in self.repository.removeprefix("library/") and self.repository.startswith(
                "library/"
            ):
                name = self.repository
        text = name + (f":{self.tag}" if self.tag else "")
        return text + (f"@{self.digest}" if self.digest else "")


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        registry, path = DOCKER_HUB, name
    else:
        registry, path = first, rest
    if registry in _LEGACY_HUB_HOSTS:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return registry, path


def parse_reference(text: str, *, default_tag: str | None = "latest") -> ImageReference:
    """Parse and normalise; raise InvalidReference with a message a person can act on.
    A `docker://` prefix (skopeo's name for a registry) is accepted and dropped."""
    text = text.removeprefix(DOCKER_TRANSPORT)
    if not text:
        raise InvalidReference("empty image reference")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference {text!r}: it contains white space")
    remainder, at, digest = text.partition("@")
    if at:
        if not _DIGEST.match(digest):
            raise InvalidReference(
                f"invalid digest {digest!r} in {text!r}: expected "
                "ALGORITHM:HEX, e.g. sha256:<64 hex digits>"
            )
    else:
        digest = ""
    name, tag = remainder, ""
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(
                f"invalid tag {tag!r} in {text!r}: tags are up to 128 "
                "letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )
    if not name:
        raise InvalidReference(f"invalid reference {text!r}: the repository name is missing")
    if _HEX64.match(name):
        raise InvalidReference(
            f"invalid reference {text!r}: a 64-character hexadecimal string "
            "is an image id, not a repository name"
        )
    registry, path = _split_registry(name)
    if registry != DOCKER_HUB and not _DOMAIN.match(registry):
        raise InvalidReference(f"invalid registry host {registry!r} in {text!r}")
    if not _PATH.match(path):
        if _PATH.match(path.lower()):
            raise InvalidReference(
                f"invalid reference {text!r}: repository names must be lower case"
            )
        raise InvalidReference(
            f"invalid repository name {path!r} in {text!r}: use lower-case "
            "letters, digits and the separators '.', '_', '__', '-' and '/'"
        )
    if len(f"{registry}/{path}") > MAX_NAME_LENGTH:
        raise InvalidReference(
            f"invalid reference {text!r}: the name is longer than {MAX_NAME_LENGTH} characters"
        )
    if not tag and not digest and default_tag:
        tag = default_tag
    return ImageReference(registry, path, tag or None, digest.lower() if digest else None)
