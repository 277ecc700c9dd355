"""`dockyard attest` and `dockyard verify-attestation`: in-toto statements about an image (SLSA
provenance, SBOMs, any predicate) signed in a DSSE envelope, stored as cosign stores them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.exits import FAILED, USAGE, fail
from dockyard.cli.images import CaCertOpt, InsecureOpt, pinned, run_client
from dockyard.cli.signing import (
    CertificateIdentityOpt,
    CertificateIssuerOpt,
    keyless_trust,
    read_private_key,
    read_public_keys,
)

if TYPE_CHECKING:
    from dockyard.client.api import Client
    from dockyard.client.attestations import AttestationReport, NotAttested

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON, for scripts.")]
# A predicate is a provenance record or an SBOM; past this it is not read into memory.
MAX_PREDICATE_BYTES = 16 * 1024 * 1024
TYPE_HELP = (
    "slsaprovenance, spdx, cyclonedx (cosign's names; also slsaprovenance1, spdxjson, link, "
    "vuln, openvex, custom) or a predicate type URI."
)


def register(app: typer.Typer) -> None:
    app.command()(attest)
    app.command("verify-attestation")(verify_attestation)


def _predicate_type(name: str) -> str:
    from dockyard.core.in_toto import predicate_type

    try:
        return predicate_type(name)
    except ValueError as exc:
        raise fail(f"--type: {exc}", USAGE) from None


def _predicate(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_PREDICATE_BYTES:
            raise fail(f"{path}: larger than {MAX_PREDICATE_BYTES // (1024 * 1024)} MiB", USAGE)
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise fail(f"{path}: cannot read the predicate ({exc.strerror})", USAGE) from None
    except (ValueError, UnicodeDecodeError):
        raise fail(f"{path}: the predicate is not JSON", USAGE) from None


def attest(
    reference: Annotated[
        str,
        typer.Argument(help="The image the statement is about, e.g. localhost:5000/me/app:1.0."),
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--key", metavar="FILE", help="The private key (PEM, from `dockyard key generate`)."
        ),
    ],
    predicate: Annotated[
        Path,
        typer.Option(
            "--predicate",
            metavar="FILE",
            help="The predicate, a JSON file (an SLSA provenance, an SPDX or CycloneDX SBOM …).",
        ),
    ],
    kind: Annotated[str, typer.Option("--type", metavar="TYPE", help=TYPE_HELP)] = "custom",
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attest to an image: an in-toto statement (subject: the image's digest; the predicate
    and its type) signed in a DSSE envelope, stored as cosign stores attestations (a layer
    of the sha256-<hex>.att tag, added to those already there) and as an OCI 1.1 referrer.
    A tag is resolved first and its digest is what the statement names."""
    from dockyard.core.reference import parse_reference

    predicate_type = _predicate_type(kind)
    document = _predicate(predicate)
    private = read_private_key(key)
    attested = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.attest(reference, private, predicate_type, document),
        reference,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "reference": reference,
                    "digest": attested.digest,
                    "predicateType": attested.predicate_type,
                    "attestationTag": attested.tag,
                    "attestationManifest": attested.tag_manifest,
                    "referrer": attested.referrer,
                }
            )
        )
        return
    if parse_reference(reference.removeprefix("docker://")).digest is None:
        typer.echo(f"{reference} is {attested.digest}; the statement names the digest")
    typer.echo(f"Attested {pinned(reference, attested.digest)}: {attested.predicate_type}")
    typer.echo(f"Stored under tag {attested.tag} ({attested.tag_manifest})")
    typer.echo(f"Stored as referrer {attested.referrer}")


def verify_attestation(
    reference: Annotated[
        str, typer.Argument(help="The image to check, e.g. localhost:5000/me/app:1.0.")
    ],
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="A public key (PEM) whose attestations are accepted (repeatable).",
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--type", metavar="TYPE", help="Only attestations of this type: " + TYPE_HELP),
    ] = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            metavar="FILE",
            help="Keyless: a sigstore trusted_root.json (Fulcio CAs, Rekor keys); the image's "
            "sigstore bundle referrers are then checked too. Needs --certificate-identity and "
            "--certificate-oidc-issuer.",
        ),
    ] = None,
    certificate_identity: CertificateIdentityOpt = None,
    certificate_oidc_issuer: CertificateIssuerOpt = None,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify an image's attestations (its sha256-<hex>.att tag and its DSSE referrers): the
    envelope's signature by one of the keys, the statement's subject (the image's digest)
    and, with --type, the predicate type. With --trusted-root, also its sigstore bundle
    referrers (cosign's keyless --new-bundle-format), checked offline: the Fulcio certificate
    and identity, the Rekor entry's signed timestamp, inclusion proof and checkpoint. Exits 0
    only when one holds; otherwise prints why each attestation was refused and exits 1."""
    from dockyard.client.attestations import NotAttested

    predicate_type = _predicate_type(kind) if kind is not None else None
    trusted = read_public_keys(key or [])
    keyless = keyless_trust([], [], trusted_root, certificate_identity, certificate_oidc_issuer)
    if not trusted and keyless is None:
        raise fail("give --key, or --trusted-root with the keyless options", USAGE)

    async def action(client: Client) -> AttestationReport | NotAttested:
        try:
            return await client.verify_attestation(
                reference, trusted, predicate_type=predicate_type, keyless=keyless
            )
        except NotAttested as exc:
            return exc

    result = run_client(insecure, ca_cert, 4, action, reference)
    report = result.report if isinstance(result, NotAttested) else result
    if as_json:
        typer.echo(json.dumps({"reference": reference, **report.to_json()}, indent=2))
    else:
        _print(reference, report, predicate_type)
    if isinstance(result, NotAttested):
        raise typer.Exit(FAILED)


def _print(reference: str, report: AttestationReport, predicate_type: str | None) -> None:
    name = pinned(reference, report.subject.digest)
    if not report.checked:
        typer.echo(
            f"{name}: no attestations found (looked under the tag sha256-<hex>.att and for "
            "DSSE and sigstore bundle referrers)",
            err=True,
        )
        return
    valid = report.valid
    if valid:
        for item in valid:
            typer.echo(
                f"Verified {name}: {item.predicate_type} attestation {item.layer} "
                f"signed by {item.key_name}"
            )
    else:
        wanted = f" of type {predicate_type}" if predicate_type else ""
        typer.echo(f"{name}: no valid attestation{wanted} by the given keys or identity", err=True)
    for item in report.checked:
        if not item.valid:
            reason = "".join(ch if ch.isprintable() else "?" for ch in str(item.reason)[:300])
            typer.echo(
                f"  {item.where}, layer {item.layer}: {item.failure.value if item.failure else '?'}"
                f": {reason}",
                err=not valid,
            )
