"""Local image names as skopeo spells them: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`,
`docker-archive:PATH[:REF]`, so users and scripts can switch between the two tools.

As in skopeo, PATH ends at the first `:` after the transport (a PATH cannot contain one) and
everything after it is the tag or reference.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.client.archive import (
    DockerArchiveDestination,
    DockerArchiveSource,
    OCIArchiveDestination,
    OCIArchiveSource,
)
from dockyard.client.errors import ClientError
from dockyard.client.image import ImageDestination, ImageSource
from dockyard.client.layout import OCILayoutDestination, OCILayoutSource

TRANSPORTS = ("oci", "oci-archive", "docker-archive")


def split_local(name: str) -> tuple[str, Path, str | None] | None:
    """(transport, path, tag or ref) for a local name; None for anything else (a registry)."""
    transport, sep, rest = name.partition(":")
    if not sep or transport not in TRANSPORTS:
        return None
    path, sep, ref = rest.partition(":")
    if not path:
        raise ClientError(f"{name!r}: the path is missing ({transport}:PATH[:TAG])")
    return transport, Path(path), (ref if sep and ref else None)


def local_source(name: str) -> ImageSource | None:
    parts = split_local(name)
    if parts is None:
        return None
    transport, path, ref = parts
    if transport == "oci":
        return OCILayoutSource(path, ref)
    if transport == "oci-archive":
        return OCIArchiveSource(path, ref)
    return DockerArchiveSource(path, ref)


def local_destination(name: str) -> ImageDestination | None:
    parts = split_local(name)
    if parts is None:
        return None
    transport, path, ref = parts
    if transport == "oci":
        return OCILayoutDestination(path, ref)
    if transport == "oci-archive":
        return OCIArchiveDestination(path, ref)
    return DockerArchiveDestination(path, ref)
