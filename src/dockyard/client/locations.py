"""Where an image lives, named as skopeo names it, so users and scripts can switch tools.

`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:REF]` are local; a bare
reference or `docker://REF` is an image in a registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.client.image import ClientError
from dockyard.core.reference import ImageReference, InvalidReference, parse_reference

LOCAL_TRANSPORTS = ("oci", "oci-archive", "docker-archive")


@dataclass(frozen=True, slots=True)
class Location:
    transport: str  # "docker", "oci", "oci-archive" or "docker-archive"
    path: str = ""
    tag: str | None = None  # for local transports: the tag or, for docker-archive, a REF
    image: ImageReference | None = None  # for "docker"

    @property
    def is_remote(self) -> bool:
        return self.transport == "docker"

    def __str__(self) -> str:
        if self.image is not None:
            return f"docker://{self.image}"
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")


def parse_location(text: str, *, default_tag: str | None = "latest") -> Location:
    transport, sep, rest = text.partition(":")
    if sep and transport in LOCAL_TRANSPORTS:
        path, _, tag = rest.partition(":")
        if not path:
            raise ClientError(f"{text!r}: the path is missing (expected {transport}:PATH[:TAG])")
        return Location(transport, path, tag or None)
    if text.startswith("docker://"):
        text = text.removeprefix("docker://")
    elif sep and transport in ("dir", "containers-storage", "docker-daemon", "ostree", "sif"):
        raise ClientError(f"the {transport}: transport is not supported; use oci:, "
                          "oci-archive:, docker-archive: or a registry reference")
    try:
        return Location("docker", image=parse_reference(text, default_tag=default_tag))
    except InvalidReference as exc:
        raise ClientError(str(exc)) from exc
