"""`dockyard attach` and `dockyard discover`: artifacts about an image (signatures, SBOMs,
attestations), on registries with or without the referrers API."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.exits import USAGE, fail
from dockyard.cli.images import CaCertOpt, InsecureOpt, pinned, run_client

if TYPE_CHECKING:
    from dockyard.client.referrers import Referrer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON, for scripts.")]


def register(app: typer.Typer) -> None:
    app.command()(attach)
    app.command()(discover)


def _annotations(items: list[str] | None) -> dict[str, str]:
    annotations = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--annotation {item!r}: expected KEY=VALUE", USAGE)
        annotations[key] = value
    return annotations


def attach(
    reference: Annotated[
        str, typer.Argument(help="The image the artifact is about, e.g. localhost:5000/me/app:1.0.")
    ],
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files to push as the artifact's layers; FILE:MEDIATYPE sets a file's "
            "media type (default application/octet-stream)."
        ),
    ] = None,
    artifact_type: Annotated[
        str,
        typer.Option(
            "--artifact-type",
            help="What the artifact is, as a media type, e.g. "
            "application/spdx+json or application/vnd.dev.cosign.artifact.sig.v1+json.",
        ),
    ] = "",
    annotation: Annotated[
        list[str] | None,
        typer.Option("--annotation", help="KEY=VALUE on the artifact's manifest (repeatable)."),
    ] = None,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Push an artifact about an image: the files as layers, an empty config, and the image's
    manifest as its `subject`. Prints the artifact's digest.

    Registries without the referrers API (CNCF Distribution 2.x) also get the referrers tag
    sha256-<hex> updated, so `dockyard discover`, oras and regctl find the artifact there too.
    """
    from dockyard.client.referrers import ArtifactFile

    if not artifact_type:
        raise fail("name the artifact's type with --artifact-type", USAGE)
    annotations = _annotations(annotation)
    items = [ArtifactFile.parse(text) for text in files or []]
    manifest = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.attach(reference, artifact_type, items, annotations=annotations),
        reference,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "subject": reference,
                    "digest": manifest.digest,
                    "artifactType": artifact_type,
                    "size": len(manifest.body),
                }
            )
        )
    else:
        typer.echo(pinned(reference, manifest.digest))


def discover(
    reference: Annotated[str, typer.Argument(help="The image, e.g. localhost:5000/me/app:1.0.")],
    artifact_type: Annotated[
        str | None,
        typer.Option(
            "--artifact-type",
            help="Only the image's referrers of this type (their own referrers are all shown).",
        ),
    ] = None,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what refers to an image (signatures, SBOMs, attestations), as a tree: the
    referrers of each referrer too, with artifact type, digest and size."""
    subject, tree = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.discover(reference, artifact_type=artifact_type),
        reference,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "reference": reference,
                    "mediaType": subject.media_type,
                    "digest": subject.digest,
                    "size": subject.size,
                    "referrers": [node.to_json() for node in tree],
                },
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(escape(pinned(reference, subject.digest)))
    _grow(root, tree)
    Console(soft_wrap=True, highlight=False).print(root)


def _grow(branch: Any, nodes: list[Referrer]) -> None:
    from rich.markup import escape

    for node in nodes:
        entry = node.descriptor
        kind = entry.get("artifactType") or entry.get("mediaType") or "?"
        label = f"{kind} {entry.get('digest', '?')} ({entry.get('size', '?')} bytes)"
        # The registry wrote these strings: no terminal control sequences get through.
        shown = "".join(ch if ch.isprintable() else "?" for ch in label)
        _grow(branch.add(escape(shown)), node.referrers)
