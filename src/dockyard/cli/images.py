"""Image commands that need no daemon: push, pull, copy, tag, inspect, tags, delete, catalog,
manifest create, ref parse. A thin layer over `dockyard.client.api.Client`.

Exit codes: 0 done, 1 failed, 2 bad usage (also: two images for one platform in `manifest
create`), 3 not found, 4 unauthorized or denied (also: `delete` of an image a multi-platform
index still holds), 5 digest mismatch (the data was discarded).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from dockyard.cli.exits import USAGE, fail, fail_with, say
from dockyard.client.errors import ClientError
from dockyard.client.image import Platform
from dockyard.client.transfer import CopyResult, SilentReporter
from dockyard.core.reference import InvalidReference, parse_reference

T = TypeVar("T")

if TYPE_CHECKING:
    from dockyard.client.api import Client

manifest_app = typer.Typer(help="Work with multi-platform indexes.", no_args_is_help=True)
ref_app = typer.Typer(help="Image references.", no_args_is_help=True)

NAMES_HELP = (
    "oci:PATH[:TAG], oci-archive:PATH[:TAG], docker-archive:PATH[:REF], or a "
    "registry reference such as localhost:5000/me/app:1.0 (docker://… also works)"
)
InsecureOpt = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Do not check the certificates of the registries this command names, and "
        "use plain HTTP with those that do not speak TLS (like docker's insecure-registries), as "
        "`dockyard login --insecure` does. HTTPS is always tried first; localhost and 127.0.0.0/8 "
        "fall back to plain HTTP without this.",
    ),
]
CaCertOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--ca-cert",
        envvar="DOCKYARD_CA_CERT",
        dir_okay=False,
        metavar="FILE",
        help="PEM file of "
        "a CA to trust (repeatable), e.g. a private or self-signed registry's. "
        "~/.docker/certs.d/HOST:PORT/ and /etc/containers/certs.d/HOST:PORT/ are read too "
        "(*.crt CAs, NAME.cert + NAME.key client certificates).",
    ),
]
JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", min=1, max=32, help="Blobs transferred at once.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only the result.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per event on stdout.")]
TagsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        "-t",
        help="Another tag for the image in the destination registry (repeatable).",
    ),
]
PlatformOpt = Annotated[
    str | None,
    typer.Option(
        "--platform",
        help="os/arch[/variant] to take from a multi-platform image (default: this machine's).",
    ),
]
AllOpt = Annotated[
    bool,
    typer.Option(
        "--all", "-a", help="Every platform of a multi-platform image, and the index itself."
    ),
]


def register(app: typer.Typer) -> None:
    for command in (push, pull, copy, tag, inspect, tags, delete, catalog):
        app.command()(command)
    app.add_typer(manifest_app, name="manifest")
    app.add_typer(ref_app, name="ref")


def insecure_hosts(insecure: bool, names: tuple[str, ...]) -> list[str]:
    """The registry hosts of the references among `names` when --insecure was given."""
    from dockyard.client.api import is_local

    if not insecure:
        return []
    hosts = []
    for name in names:
        if not is_local(name):
            with suppress(InvalidReference):  # reported by the command itself
                hosts.append(parse_reference(name).registry)
    return hosts


def run_client(
    insecure: bool,
    ca_cert: list[Path] | None,
    jobs: int,
    action: Callable[[Client], Awaitable[T]],
    *names: str,
    host: str | None = None,
) -> T:
    """Run `action`; --insecure covers the registries of `names` (the command's images) and
    `host`."""
    from dockyard.client.api import Client  # here: `dockyard --help` need not load httpx
    from dockyard.client.credentials import normalize_host
    from dockyard.client.transport import is_loopback

    hosts = insecure_hosts(insecure, names)
    if insecure and host is not None:
        hosts.append(normalize_host(host))

    async def main() -> T:
        async with Client(insecure_hosts=hosts, jobs=jobs, ca_certs=ca_cert or ()) as client:
            try:
                return await action(client)
            finally:
                # Said for a network host only: its traffic went unencrypted.
                for plain in client.plain_http_hosts():
                    if not is_loopback(plain):
                        say(f"{plain} does not speak TLS; used plain HTTP")

    try:
        return asyncio.run(main())
    except (InvalidReference, ValueError) as exc:
        raise fail(str(exc), USAGE) from exc
    except ClientError as exc:
        raise fail_with(exc) from exc


def reporter(quiet: bool, as_json: bool, verb: str) -> Any:
    from dockyard.cli.progress import BarReporter, JsonReporter

    if as_json:
        return JsonReporter()
    if quiet or not sys.stderr.isatty():
        return SilentReporter()
    return BarReporter(verb=verb)


def _context(rep: Any) -> AbstractContextManager:
    return rep if hasattr(rep, "__enter__") else nullcontext()


def pinned(name: str, digest: str) -> str:
    """`registry/repository@sha256:…` for a registry reference, the form that pulls exactly
    this content back; a local name keeps its own form."""
    from dockyard.client.api import is_local

    if is_local(name):
        return f"{name} (digest {digest})"
    ref = parse_reference(name)
    return f"{ref.registry}/{ref.repository}@{digest}"


def report_result(
    result: CopyResult,
    destination: str,
    quiet: bool,
    as_json: bool,
    moved: str = "sent",
    remote: str | None = None,
) -> None:
    """`moved`: what happened to the blobs, from the side of the one running the command;
    `remote`: the registry reference the digest is printed with (default: `destination`)."""
    summary = {
        "event": "done",
        "destination": destination,
        "digest": result.manifest.digest,
        "blobs_transferred": result.blobs_transferred,
        "bytes_transferred": result.bytes_transferred,
        "blobs_skipped": result.blobs_skipped,
        "blobs_mounted": result.blobs_mounted,
        "platforms": result.platforms,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    elif quiet:
        typer.echo(result.manifest.digest)
    else:
        where = pinned(remote or destination, result.manifest.digest)
        typer.echo(
            f"{destination}: {where}; {result.blobs_transferred} blob(s) {moved} "
            f"({result.bytes_transferred} bytes), {result.blobs_skipped} already there, "
            f"{result.blobs_mounted} mounted"
        )


def platform_of(text: str | None) -> Platform | None:
    if text is None:
        return None
    try:
        return Platform.parse(text)
    except ClientError as exc:
        raise fail(str(exc), USAGE) from exc


def push(
    source: Annotated[str, typer.Argument(help=f"The local image: {NAMES_HELP}.")],
    reference: Annotated[
        str, typer.Argument(help="Where to push it, e.g. localhost:5000/me/app:1.0.")
    ],
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    jobs: JobsOpt = 4,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    tags: TagsOpt = None,
) -> None:
    """Push a local image (layout or archive) to a registry.

    Blobs the registry has are skipped, blobs it holds in another repository are mounted, the
    rest are uploaded in parallel (chunked, resuming after a dropped connection); the manifest
    goes last. Multi-platform indexes are pushed whole. `--tag` adds tags, sent with the
    manifest in one request where the registry takes several (`?tag=`).
    """
    rep = reporter(quiet, as_json, "Pushed")
    with _context(rep):
        result = run_client(
            insecure,
            ca_cert,
            jobs,
            lambda c: c.push(source, reference, reporter=rep, tags=tags or ()),
            source,
            reference,
        )
    report_result(result, reference, quiet, as_json)


def pull(
    reference: Annotated[str, typer.Argument(help="The image in a registry.")],
    destination: Annotated[
        str | None,
        typer.Argument(
            help=f"Where to write it: {NAMES_HELP}. Default: an OCI layout named after the "
            "image, e.g. oci:app:1.0."
        ),
    ] = None,
    platform: PlatformOpt = None,
    all_platforms: AllOpt = False,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    jobs: JobsOpt = 4,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull an image from a registry into a layout or an archive, verifying every digest."""
    rep = reporter(quiet, as_json, "Pulled")
    wanted = platform_of(platform)
    with _context(rep):
        result, written = run_client(
            insecure,
            ca_cert,
            jobs,
            lambda c: c.pull(
                reference, destination, all_platforms=all_platforms, platform=wanted, reporter=rep
            ),
            reference,
        )
    report_result(result, written, quiet, as_json, moved="received", remote=reference)


def copy(
    source: Annotated[str, typer.Argument(help=NAMES_HELP + ".")],
    destination: Annotated[str, typer.Argument(help=NAMES_HELP + ".")],
    platform: PlatformOpt = None,
    all_platforms: AllOpt = False,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    jobs: JobsOpt = 4,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    tags: TagsOpt = None,
) -> None:
    """Copy an image between any two places, streaming, skipping what the destination has.
    `--tag` adds tags in a destination registry, with the manifest in one request where the
    registry takes several."""
    rep = reporter(quiet, as_json, "Copied")
    wanted = platform_of(platform)
    with _context(rep):
        result = run_client(
            insecure,
            ca_cert,
            jobs,
            lambda c: c.copy(
                source,
                destination,
                all_platforms=all_platforms,
                platform=wanted,
                reporter=rep,
                tags=tags or (),
            ),
            source,
            destination,
        )
    from dockyard.client.api import is_local

    report_result(
        result,
        destination,
        quiet,
        as_json,
        moved="copied",
        remote=source if is_local(destination) else destination,
    )


def tag(
    source: Annotated[str, typer.Argument(help="The image to name.")],
    target: Annotated[str, typer.Argument(help="The new name (same registry, or both local).")],
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
) -> None:
    """Add a name to the same content: a tag is only a label, no blob moves."""
    result = run_client(insecure, ca_cert, 4, lambda c: c.tag(source, target), source, target)
    typer.echo(f"{target}: {pinned(target, result.manifest.digest)}")


def inspect(
    name: Annotated[str, typer.Argument(help=NAMES_HELP + ".")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the manifest exactly as stored.")
    ] = False,
    config: Annotated[
        bool, typer.Option("--config", help="Print the image configuration.")
    ] = False,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
) -> None:
    """Show an image: digest, media type, platforms, layers and sizes (JSON)."""
    if raw:
        manifest = run_client(insecure, ca_cert, 4, lambda c: c.manifest(name), name)
        sys.stdout.buffer.write(manifest.body)
        return
    summary = run_client(insecure, ca_cert, 4, lambda c: c.inspect(name), name)
    if config:
        configs = [p.get("config", {}) for p in summary.platforms]
        typer.echo(json.dumps(configs[0] if len(configs) == 1 else configs, indent=2))
        return
    document = summary.to_json()
    for platform in document["platforms"]:
        platform.pop("config", None)
    typer.echo(json.dumps(document, indent=2))


def tags(
    reference: Annotated[str, typer.Argument(help="A repository, e.g. localhost:5000/me/app.")],
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
) -> None:
    """List a repository's tags."""
    for name in run_client(insecure, ca_cert, 4, lambda c: c.tags(reference), reference):
        typer.echo(name)


def delete(
    reference: Annotated[str, typer.Argument(help="registry/repository:tag or @digest")],
    tag_only: Annotated[
        bool,
        typer.Option(
            "--tag-only", help="Remove only this tag, not the manifest and its other tags."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete it even though a multi-platform index of the repository "
            "still names it (that index is then broken). Without it, Dockyard refuses and "
            "names the index; exit code 4.",
        ),
    ] = False,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
) -> None:
    """Delete an image from a registry (the manifest and every tag pointing at it).

    An image that is part of a multi-platform index is kept until that index is deleted first,
    unless --force is given.
    """
    deleted = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.delete(reference, tag_only=tag_only, force=force),
        reference,
    )
    shown = deleted if tag_only else pinned(reference, deleted)
    typer.echo(f"deleted {shown}")


def catalog(
    registry: Annotated[
        str, typer.Argument(help="Registry host, e.g. localhost:5000 (docker://… also works).")
    ],
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
) -> None:
    """List the repositories of a registry you may see: logged in, your private ones too."""
    for name in run_client(insecure, ca_cert, 4, lambda c: c.catalog(registry), host=registry):
        typer.echo(name)


@manifest_app.command("create")
def manifest_create(
    target: Annotated[
        str, typer.Argument(help="The index to create, e.g. localhost:5000/me/app:1.0.")
    ],
    sources: Annotated[
        list[str], typer.Argument(help="Per-platform images (any names dockyard reads).")
    ],
    annotation: Annotated[
        list[str] | None, typer.Option("--annotation", help="KEY=VALUE on the index (repeatable).")
    ] = None,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    jobs: JobsOpt = 4,
) -> None:
    """Build and push a multi-platform index from per-platform images (what `docker buildx
    imagetools create` does); the images are copied next to it first.

    Two images for the same platform (os/arch[/variant]) are refused, naming both, before
    anything is copied (exit code 2).
    """
    annotations = {}
    for item in annotation or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--annotation {item!r}: expected KEY=VALUE", USAGE)
        annotations[key] = value
    index = run_client(
        insecure,
        ca_cert,
        jobs,
        lambda c: c.create_index(target, sources, annotations=annotations),
        target,
        *sources,
    )
    typer.echo(f"{target}: {pinned(target, index.digest)}")


@ref_app.command("parse")
def ref_parse(reference: str) -> None:
    """Print the parts of an image reference, normalised as docker does."""
    try:
        ref = parse_reference(reference)
    except InvalidReference as exc:
        raise fail(str(exc), USAGE) from exc
    typer.echo(
        json.dumps(
            {
                "registry": ref.registry,
                "repository": ref.repository,
                "tag": ref.tag,
                "digest": ref.digest,
                "api_host": ref.api_host,
                "canonical": str(ref),
                "familiar": ref.familiar,
            },
            indent=2,
        )
    )


__all__ = ["register"]
