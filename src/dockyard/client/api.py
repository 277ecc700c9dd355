"""The client as Python calls: what `dockyard push/pull/copy/inspect/...` do, without a daemon.

    async with Client() as client:
        await client.push("oci:./app:1.0", "localhost:5000/me/app:1.0")
        await client.pull("localhost:5000/me/app:1.0", "docker-archive:app.tar")

Names are skopeo's: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:REF]`;
anything else (optionally `docker://`-prefixed) is an image in a registry. `SyncClient` wraps
the same calls for code that is not async.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.client import referrers
from dockyard.client.credentials import CredentialStore, normalize_host
from dockyard.client.errors import ClientError, NotFound, UsageError
from dockyard.client.image import ImageDestination, ImageSource, Manifest, Platform
from dockyard.client.local import local_destination, local_source, split_local
from dockyard.client.referrers import ArtifactFile, Referrer
from dockyard.client.registry import RegistryClient
from dockyard.client.remote import RegistryDestination, RegistrySource
from dockyard.client.transfer import (
    Copier,
    CopyOptions,
    CopyResult,
    Reporter,
    build_index,
    child_descriptors,
    select_platform,
)
from dockyard.client.transport import RetryPolicy
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from dockyard.core.names import is_valid_tag
from dockyard.core.reference import ImageReference, InvalidReference, parse_reference

if TYPE_CHECKING:
    # The signing and verifying modules load the cryptography library and the sigstore and
    # notation formats: imported by the calls that use them, not by every command's client.
    from dockyard.client import attestations, signatures
    from dockyard.client.notation import NotationReport
    from dockyard.core import keys, sigstore

# The longest Retry-After (429, 503) a command waits out by itself before it reports the
# registry's answer: long enough for a short limit window, short enough to not seem hung.
RETRY_AFTER_WAIT = 30.0


def _add_tags(destination: ImageDestination, name: str, tags: Sequence[str]) -> None:
    """`--tag`: more tags for the image pushed to a registry reference that names a tag."""
    if not isinstance(destination, RegistryDestination):
        raise UsageError(f"--tag names more tags in a registry; {name} is not a registry")
    if remote_reference(name).tag is None:
        raise UsageError(f"--tag adds to the tag of the destination; {name} names none")
    bad = [tag for tag in tags if not is_valid_tag(tag)]
    if bad:
        raise UsageError(f"invalid tag {bad[0]!r}: letters, digits, _ . - (128 at most)")
    destination.extra_tags = tuple(tags)


def remote_reference(name: str) -> ImageReference:
    try:
        return parse_reference(name)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from exc


def is_local(name: str) -> bool:
    return split_local(name) is not None


@dataclass
class ImageSummary:
    """What `inspect` shows: the manifest, and per platform its config and layer sizes."""

    name: str
    digest: str
    media_type: str
    platforms: list[dict[str, Any]]
    manifest: Manifest

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "mediaType": self.media_type,
            "platforms": self.platforms,
        }


class Client:
    def __init__(
        self,
        *,
        store: CredentialStore | None = None,
        insecure_hosts: Iterable[str] = (),
        jobs: int = 4,
        ca_certs: Iterable[str | Path] = (),
    ) -> None:
        self.store = store or CredentialStore()
        self.insecure_hosts = list(insecure_hosts)
        self.ca_certs = list(ca_certs)
        self.jobs = jobs
        self._registries: dict[str, RegistryClient] = {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for registry in self._registries.values():
            await registry.aclose()
        self._registries.clear()

    def plain_http_hosts(self) -> list[str]:
        """Registries that turned out not to speak TLS and were used over plain HTTP."""
        return [host for host, registry in self._registries.items() if registry.scheme == "http"]

    # -- where images live ---------------------------------------------------------------
    def registry(self, host: str) -> RegistryClient:
        if host not in self._registries:
            self._registries[host] = RegistryClient(
                host,
                store=self.store,
                insecure_hosts=self.insecure_hosts,
                ca_certs=self.ca_certs,
                retry=RetryPolicy(rate_limit_wait=RETRY_AFTER_WAIT),
            )
        return self._registries[host]

    def source(self, name: str) -> ImageSource:
        local = local_source(name)
        if local is not None:
            return local
        ref = remote_reference(name)
        return RegistrySource(self.registry(ref.registry), ref)

    def destination(self, name: str) -> ImageDestination:
        local = local_destination(name)
        if local is not None:
            return local
        ref = remote_reference(name)
        return RegistryDestination(self.registry(ref.registry), ref)

    @staticmethod
    def _destination_tag(name: str) -> str | None:
        """Registries take the tag from the reference; local destinations know their own."""
        return None if is_local(name) else remote_reference(name).tag

    # -- copying -------------------------------------------------------------------------
    async def copy(
        self,
        source: str,
        destination: str,
        *,
        all_platforms: bool = False,
        platform: Platform | None = None,
        reporter: Reporter | None = None,
        tags: Sequence[str] = (),
    ) -> CopyResult:
        src, dst = self.source(source), self.destination(destination)
        if tags:
            _add_tags(dst, destination, tags)
        try:
            options = CopyOptions(all_platforms=all_platforms, platform=platform, jobs=self.jobs)
            return await Copier(src, dst, options, reporter).copy(
                None, self._destination_tag(destination)
            )
        finally:
            await src.close()
            await dst.close()

    async def push(self, source: str, reference: str, **options: Any) -> CopyResult:
        if not is_local(source):
            raise ClientError(
                f"{source!r} is not a local image: name it oci:PATH[:TAG], "
                "oci-archive:PATH[:TAG] or docker-archive:PATH "
                "(use `dockyard copy` between registries)"
            )
        if is_local(reference):
            raise ClientError(f"{reference!r} is not a registry reference")
        options.setdefault("all_platforms", True)
        return await self.copy(source, reference, **options)

    async def pull(
        self, reference: str, destination: str | None = None, **options: Any
    ) -> tuple[CopyResult, str]:
        if is_local(reference):
            raise ClientError(f"{reference!r} is a local image; pull takes a registry reference")
        ref = remote_reference(reference)
        if destination is None:
            # By digest: an untagged layout entry, not one labelled `latest`.
            name = ref.repository.rsplit("/", 1)[-1]
            destination = f"oci:{name}:{ref.tag}" if ref.tag else f"oci:{name}"
        return await self.copy(reference, destination, **options), destination

    async def tag(self, source: str, target: str) -> CopyResult:
        """Give the same content another name; within one registry no blob moves."""
        if is_local(source) != is_local(target):
            raise ClientError(
                "tag names the same image twice: both local or both in a "
                "registry (use push, pull or copy to move between them)"
            )
        if not is_local(source):
            src, dst = remote_reference(source), remote_reference(target)
            if src.registry != dst.registry:
                raise ClientError(
                    f"{source} and {target} are in different registries; use `dockyard copy`"
                )
            if dst.tag is None:
                raise ClientError(f"{target}: name the new tag")
        return await self.copy(source, target, all_platforms=True)

    # -- looking ---------------------------------------------------------------------------
    async def manifest(self, name: str) -> Manifest:
        src = self.source(name)
        try:
            return await src.get_manifest(None)
        finally:
            await src.close()

    async def inspect(self, name: str) -> ImageSummary:
        src = self.source(name)
        try:
            top = await src.get_manifest(None)
            images: list[tuple[dict[str, Any] | None, Manifest]] = []
            if top.is_index:
                for entry in child_descriptors(top):
                    try:
                        images.append((entry, await src.get_manifest(entry["digest"])))
                    except NotFound:
                        images.append(
                            (entry, Manifest(b"{}", entry.get("mediaType", ""), entry["digest"]))
                        )
            else:
                images.append((None, top))
            platforms = [await self._describe_image(src, entry, image) for entry, image in images]
            return ImageSummary(src.describe(), top.digest, top.media_type, platforms, top)
        finally:
            await src.close()

    async def _describe_image(
        self, src: ImageSource, entry: dict[str, Any] | None, image: Manifest
    ) -> dict[str, Any]:
        doc = image.json()
        layers = doc.get("layers") or []
        info: dict[str, Any] = {
            "digest": image.digest,
            "mediaType": image.media_type,
            "layers": [
                {
                    "digest": layer.get("digest"),
                    "size": layer.get("size"),
                    "mediaType": layer.get("mediaType"),
                }
                for layer in layers
            ],
            "size": sum(int(layer.get("size") or 0) for layer in layers),
        }
        if doc.get("artifactType"):
            info["artifactType"] = doc["artifactType"]
        platform = dict((entry or {}).get("platform") or {})
        config = doc.get("config") or {}
        if (
            config.get("mediaType") in (mt.OCI_CONFIG, mt.DOCKER_CONFIG)
            and int(config.get("size") or 0) < 4 * 1024 * 1024
        ):
            try:
                config_doc = json.loads(await _read_all(src, config))
            except (ClientError, ValueError):
                config_doc = {}
            for key in ("os", "architecture", "variant"):
                if config_doc.get(key) and key not in platform:
                    platform[key] = config_doc[key]
            info["created"] = config_doc.get("created")
            info["config"] = config_doc
        info["platform"] = platform
        return info

    async def tags(self, reference: str) -> list[str]:
        ref = remote_reference(reference)
        return await self.registry(ref.registry).list_tags(ref.repository)

    async def catalog(self, host: str) -> list[str]:
        return await self.registry(normalize_host(host)).catalog()

    async def delete(self, reference: str, *, tag_only: bool = False, force: bool = False) -> str:
        """Delete a manifest (by digest: with every tag pointing at it), or only a tag.
        `force`: even one a multi-platform index of the repository still names."""
        ref = remote_reference(reference)
        registry = self.registry(ref.registry)
        if tag_only:
            if ref.digest or not ref.tag:
                raise ClientError("--tag-only needs a reference with a tag")
            await registry.delete_manifest(ref.repository, ref.tag)
            return ref.tag
        digest = ref.digest
        if digest is None:
            found = await registry.head_manifest(ref.repository, ref.reference)
            if found is None:
                raise NotFound(f"{ref}: no such image")
            digest = found.digest
        await registry.delete_manifest(ref.repository, digest, force=force)
        return digest

    async def _subject(self, reference: str) -> tuple[ImageReference, Descriptor]:
        ref = remote_reference(reference)
        found = await self.registry(ref.registry).head_manifest(ref.repository, ref.reference)
        if found is None:
            raise NotFound(f"{ref}: no such image")
        return ref, found

    async def attach(
        self,
        reference: str,
        artifact_type: str,
        files: Iterable[ArtifactFile],
        *,
        annotations: dict[str, str] | None = None,
    ) -> Manifest:
        """Push an artifact (files as layers, empty config) whose subject is `reference`."""
        ref, subject = await self._subject(reference)
        return await referrers.attach(
            self.registry(ref.registry),
            ref.repository,
            subject,
            artifact_type,
            list(files),
            annotations,
        )

    async def discover(
        self, reference: str, *, artifact_type: str | None = None
    ) -> tuple[Descriptor, list[Referrer]]:
        """The image's manifest descriptor and, as a tree, what refers to it."""
        ref, subject = await self._subject(reference)
        tree = await referrers.discover(
            self.registry(ref.registry), ref.repository, subject.digest, artifact_type
        )
        return subject, tree

    async def sign(
        self,
        reference: str,
        private_key: keys.PrivateKey,
        *,
        referrer: bool = False,
        all_platforms: bool = False,
    ) -> list[signatures.Signed]:
        """Sign the manifest digest `reference` resolves to (a tag is resolved first: the
        signature names the digest, never the tag), in cosign's key-based format; with
        `referrer`, also store the signature as an OCI 1.1 referrer of the image. With
        `all_platforms` and an index, every image it lists is signed after the index."""
        from dockyard.client import signatures

        ref, subject = await self._subject(reference)
        registry = self.registry(ref.registry)
        done = [await signatures.sign(registry, ref, subject, private_key, as_referrer=referrer)]
        if all_platforms and subject.media_type in mt.INDEXES:
            index = await registry.get_manifest(ref.repository, subject.digest)
            for entry in child_descriptors(index):
                child = Descriptor(
                    str(entry.get("mediaType", "")), str(entry["digest"]), int(entry.get("size", 0))
                )
                done.append(
                    await signatures.sign(registry, ref, child, private_key, as_referrer=referrer)
                )
        return done

    async def verify(
        self,
        reference: str,
        trusted: Iterable[tuple[str, keys.PublicKey]],
        *,
        all_platforms: bool = False,
        identity: str | None = None,
        keyless: sigstore.Trust | None = None,
    ) -> signatures.Verification:
        """Find the cosign signatures of `reference` (tag scheme and referrers) and judge each
        against the (name, public key) pairs, and with `keyless`, certificates chaining to its
        roots, checked offline against its Rekor keys; `identity` is the repository the
        signatures must name (default: `reference`'s own)."""
        from dockyard.client import signatures

        ref = remote_reference(reference)
        registry = self.registry(ref.registry)
        top = await registry.get_manifest(ref.repository, ref.reference)
        return await signatures.verify(
            registry,
            ref,
            top,
            list(trusted),
            all_platforms=all_platforms,
            identity=identity,
            keyless=keyless,
        )

    async def verify_notation(
        self, reference: str, trust_store: str | Path, *, now: datetime | None = None
    ) -> NotationReport:
        """Verify the image's notation signatures against the X.509 roots in `trust_store`
        (a certificate file or a folder, notation's `truststore/` layout included);
        `notation.NotVerified` unless at least one holds."""
        from dockyard.client import notation

        roots = notation.trust_store(Path(trust_store))
        ref, subject = await self._subject(reference)
        return await notation.verify_notation(
            self.registry(ref.registry), ref.repository, subject, roots, now
        )

    async def attest(
        self,
        reference: str,
        private_key: keys.PrivateKey,
        predicate_type: str,
        predicate: Any,
    ) -> attestations.Attested:
        """Sign an in-toto statement (subject: the digest `reference` resolves to) with
        `predicate` of `predicate_type` (a URI) in a DSSE envelope, and store it as cosign
        does (`sha256-<hex>.att`) and as an OCI 1.1 referrer of the image."""
        from dockyard.client import attestations

        ref, subject = await self._subject(reference)
        return await attestations.attest(
            self.registry(ref.registry), ref, subject, private_key, predicate_type, predicate
        )

    async def verify_attestation(
        self,
        reference: str,
        trusted: Iterable[tuple[str, keys.PublicKey]],
        *,
        predicate_type: str | None = None,
        keyless: sigstore.Trust | None = None,
    ) -> attestations.AttestationReport:
        """Check the image's attestations against the (name, public key) pairs: the DSSE
        signature, the statement's subject digest and, when given, its predicate type; with
        `keyless`, its sigstore bundle referrers too. `attestations.NotAttested` unless one
        holds."""
        from dockyard.client import attestations

        ref, subject = await self._subject(reference)
        return await attestations.verify_attestations(
            self.registry(ref.registry),
            ref.repository,
            subject,
            list(trusted),
            predicate_type,
            keyless,
        )

    async def create_index(
        self,
        target: str,
        sources: list[str],
        *,
        annotations: dict[str, str] | None = None,
        reporter: Reporter | None = None,
    ) -> Manifest:
        """A multi-platform index at `target` from per-platform images (copied next to it)."""
        ref = remote_reference(target)
        if ref.tag is None:
            raise ClientError(f"{target}: name the tag of the new index")
        entries: list[dict[str, Any]] = []
        origins: list[tuple[int, str]] = []  # (position among the sources, name)
        summaries = []
        for position, name in enumerate(sources):
            summary = await self.inspect(name)
            summaries.append(summary)
            if summary.manifest.is_index:
                children = child_descriptors(summary.manifest)
            else:
                children = [summary.manifest.descriptor(platform=summary.platforms[0]["platform"])]
            entries.extend(children)
            origins.extend([(position, name)] * len(children))
        # Checked before anything is copied: a refused index leaves no stray images behind.
        one_image_per_platform(entries, origins)
        for name, summary in zip(sources, summaries, strict=True):
            # Every child must live in the target repository: copy it there by digest.
            await self.copy(
                name,
                f"{ref.registry}/{ref.repository}@{summary.digest}",
                all_platforms=True,
                reporter=reporter,
            )
        docker = all(entry.get("mediaType") == mt.DOCKER_MANIFEST for entry in entries)
        index = build_index(
            entries, mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX, annotations
        )
        await self.registry(ref.registry).put_manifest(ref.repository, ref.tag, index)
        return index


def one_image_per_platform(entries: list[dict[str, Any]], origins: list[tuple[int, str]]) -> None:
    """A client picks the first entry of its platform: a second one would never be pulled."""
    seen: dict[tuple[str, ...], tuple[int, str]] = {}
    for entry, origin in zip(entries, origins, strict=True):
        platform = entry.get("platform")
        annotations = entry.get("annotations") or {}
        # Entries without a platform, and buildx's attestations (unknown/unknown), are not
        # images anyone selects by platform.
        if (
            not isinstance(platform, dict)
            or "vnd.docker.reference.type" in annotations
            or platform.get("os") in (None, "unknown")
        ):
            continue
        parts = [str(platform.get(k) or "") for k in ("os", "architecture", "variant")]
        key = (*parts, str(platform.get("os.version") or ""))
        if key in seen:
            shown = "/".join(p for p in parts if p)
            if platform.get("os.version"):
                shown += f" (os.version {platform['os.version']})"
            (first, first_name), (_, name) = seen[key], origin
            if first == origin[0]:
                where = f"twice in {name}"
            elif first_name == name:
                where = f"twice: {name} is named more than once"
            else:
                where = f"by both {first_name} and {name}"
            raise UsageError(
                f"{shown} is given {where}: an index holds one image per "
                "platform; leave one of them out"
            )
        seen[key] = origin


async def _read_all(src: ImageSource, descriptor: dict[str, Any]) -> bytes:
    parts = []
    async for chunk in src.open_blob(
        Descriptor(descriptor["mediaType"], descriptor["digest"], int(descriptor["size"]))
    ):
        parts.append(chunk)
    return b"".join(parts)


class SyncClient:
    """The same operations for code that is not async; each call runs its own event loop."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __getattr__(self, name: str) -> Any:
        method = getattr(Client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                async with Client(**self.options) as client:
                    return await method(client, *args, **kwargs)

            return asyncio.run(run())

        return call


__all__ = ["Client", "ImageSummary", "SyncClient", "select_platform"]
