"""`dockyard key generate`, `dockyard sign` and `dockyard verify`: cosign's key-based image
signatures, made and checked without cosign.

The private key's password comes from `DOCKYARD_KEY_PASSWORD` or a hidden prompt; it is never
printed, logged or passed on a command line.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.exits import FAILED, USAGE, fail
from dockyard.cli.images import CaCertOpt, InsecureOpt, pinned, run_client
from dockyard.cli.notation import TrustStoreOpt, verify_with_trust_store

if TYPE_CHECKING:
    from dockyard.client.signatures import Verification
    from dockyard.core import keys, sigstore

PASSWORD_ENV = "DOCKYARD_KEY_PASSWORD"

key_app = typer.Typer(help="Signing keys (ECDSA P-256, PEM, as cosign uses).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON, for scripts.")]
CertificateIdentityOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-identity",
        help="Keyless: the email or URI the signing certificate must name.",
    ),
]
CertificateIssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-oidc-issuer",
        help="Keyless: the OIDC issuer that must have vouched for that identity, e.g. "
        "https://token.actions.githubusercontent.com.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")
    app.command()(sign)
    app.command()(verify)


def _password(confirm: bool) -> bytes:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env.encode()
    try:
        password = getpass.getpass("Password for the private key: ")
        if confirm and getpass.getpass("Password again: ") != password:
            raise fail("the two passwords differ", USAGE)
    except (EOFError, KeyboardInterrupt):
        raise fail(f"no password given (set {PASSWORD_ENV} or answer the prompt)", USAGE) from None
    return password.encode()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start (no moment with wider rights); never replace."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


@key_app.command("generate")
def generate(
    output: Annotated[
        str,
        typer.Option(
            "--output",
            metavar="NAME",
            help="Write NAME.key (private, encrypted, mode 0600) and NAME.pub (public).",
        ),
    ] = "dockyard",
) -> None:
    """Make an ECDSA P-256 key pair for `dockyard sign` (and cosign): NAME.key, encrypted
    with a password from DOCKYARD_KEY_PASSWORD or asked twice, and NAME.pub to give to
    whoever verifies. Existing files are never overwritten."""
    from dockyard.core import keys

    private_path, public_path = Path(f"{output}.key"), Path(f"{output}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise fail(f"{path} exists; choose another --output or move it away", USAGE)
    password = _password(confirm=True)
    if not password:
        raise fail("the password is empty; a private key is only written encrypted", USAGE)
    private = keys.generate_private_key()
    try:
        _write_new(private_path, keys.private_key_pem(private, password), 0o600)
        _write_new(public_path, keys.public_key_pem(private), 0o644)
    except OSError as exc:
        raise fail(f"cannot write the key: {exc.strerror} ({exc.filename})") from None
    typer.echo(f"Private key written to {private_path}")
    typer.echo(f"Public key written to {public_path} ({keys.fingerprint(private)})")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise fail(f"{path}: cannot read the {what} ({exc.strerror})", USAGE) from None


def read_private_key(path: Path) -> keys.PrivateKey:
    from dockyard.core import keys

    pem = _read(path, "private key")
    if b"ENCRYPTED SIGSTORE PRIVATE KEY" in pem:
        raise fail(
            f"{path} is in cosign's own key format (scrypt + secretbox), which dockyard does "
            "not read; make a key with `dockyard key generate`, or export the key as PKCS#8 PEM",
            USAGE,
        )
    try:
        return keys.load_private_key(pem, _password(confirm=False))
    except keys.KeyMaterialError as exc:
        raise fail(f"{path}: {exc}", USAGE) from None


def sign(
    reference: Annotated[
        str, typer.Argument(help="The image to sign, e.g. localhost:5000/me/app:1.0.")
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--key", metavar="FILE", help="The private key (PEM, from `dockyard key generate`)."
        ),
    ],
    referrers: Annotated[
        bool,
        typer.Option(
            "--referrers",
            help="Also store the signature as an OCI 1.1 referrer of the image (found by the "
            "referrers API), besides the sha256-<hex>.sig tag.",
        ),
    ] = False,
    all_platforms: Annotated[
        bool,
        typer.Option(
            "--all-platforms",
            help="For a multi-platform index: also sign every image it lists.",
        ),
    ] = False,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign an image in cosign's key-based format: the signature is added to the image's
    sha256-<hex>.sig tag (other signatures there are kept), so cosign, `dockyard verify` and
    policy engines find it. A tag is resolved first and its digest is what gets signed."""
    from dockyard.core.reference import parse_reference

    private = read_private_key(key)
    done = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.sign(reference, private, referrer=referrers, all_platforms=all_platforms),
        reference,
    )
    ref = parse_reference(reference.removeprefix("docker://"))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "reference": reference,
                    "digest": done[0].digest,
                    "signatureTag": done[0].tag,
                    "signatureManifest": done[0].tag_manifest,
                    "referrer": done[0].referrer,
                    "signed": [
                        {
                            "digest": signed.digest,
                            "signatureTag": signed.tag,
                            "signatureManifest": signed.tag_manifest,
                            "referrer": signed.referrer,
                        }
                        for signed in done
                    ],
                }
            )
        )
        return
    if ref.digest is None:
        typer.echo(f"{ref} is {done[0].digest}; signing the digest, not the tag")
    for signed in done:
        typer.echo(f"Signed {pinned(reference, signed.digest)}")
        typer.echo(f"  signature stored under tag {signed.tag} ({signed.tag_manifest})")
        if signed.referrer:
            typer.echo(f"  signature stored as referrer {signed.referrer}")


def read_public_keys(paths: list[Path]) -> list[tuple[str, keys.PublicKey]]:
    from dockyard.core import keys

    trusted = []
    for path in paths:
        try:
            trusted.append((str(path), keys.load_public_key(_read(path, "public key"))))
        except keys.KeyMaterialError as exc:
            raise fail(f"{path}: {exc}", USAGE) from None
    return trusted


def keyless_trust(
    roots: list[Path],
    rekor: list[Path],
    trusted_root: Path | None,
    identity: str | None,
    issuer: str | None,
) -> sigstore.Trust | None:
    from dockyard.core import keys, sigstore

    # What --certificate-root names is trusted as given; trusted_root.json marks its
    # intermediates apart from its roots.
    certificates, intermediates, rekor_keys = [], [], []
    try:
        for path in roots:
            certificates.extend(sigstore.load_certificates(_read(path, "certificates")))
        for path in rekor:
            rekor_keys.append(keys.load_public_key(_read(path, "Rekor key")))
        if trusted_root is not None:
            found_roots, found_intermediates, found_rekor = sigstore.load_trusted_root(
                _read(trusted_root, "trusted root")
            )
            certificates.extend(found_roots)
            intermediates.extend(found_intermediates)
            rekor_keys.extend(found_rekor)
    except (sigstore.TrustMaterialError, keys.KeyMaterialError) as exc:
        raise fail(str(exc), USAGE) from None
    if not certificates and not rekor_keys:
        if identity or issuer:
            raise fail("--certificate-identity needs --certificate-root or --trusted-root", USAGE)
        return None
    if certificates:
        if not rekor_keys:
            raise fail(
                "keyless signatures are checked offline against Rekor: give --rekor-key or "
                "--trusted-root",
                USAGE,
            )
        if not identity or not issuer:
            raise fail(
                "keyless verification needs --certificate-identity and "
                "--certificate-oidc-issuer: any certificate from the CA would pass otherwise",
                USAGE,
            )
    return sigstore.Trust(
        tuple(certificates), tuple(intermediates), tuple(rekor_keys), identity, issuer
    )


def verify(
    reference: Annotated[
        str, typer.Argument(help="The image to verify, e.g. localhost:5000/me/app:1.0.")
    ],
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="A public key (PEM: ECDSA P-256/P-384 or RSA) whose signature is accepted "
            "(repeatable: any one of them is enough).",
        ),
    ] = None,
    certificate_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-root",
            metavar="FILE",
            help="Keyless: PEM certificates of the CA (e.g. Fulcio's root, and intermediates) "
            "that signing certificates must chain to (repeatable). Needs --rekor-key, "
            "--certificate-identity and --certificate-oidc-issuer.",
        ),
    ] = None,
    rekor_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--rekor-key",
            metavar="FILE",
            help="A Rekor log's public key (PEM, repeatable): signatures must then carry a "
            "Rekor bundle signed by it, checked offline.",
        ),
    ] = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            metavar="FILE",
            help="A sigstore trusted_root.json: its certificate authorities and Rekor keys, as "
            "--certificate-root and --rekor-key.",
        ),
    ] = None,
    certificate_identity: CertificateIdentityOpt = None,
    certificate_oidc_issuer: CertificateIssuerOpt = None,
    trust_store: TrustStoreOpt = None,
    all_platforms: Annotated[
        bool,
        typer.Option(
            "--all-platforms",
            help="For a multi-platform index: every image it lists must be signed too.",
        ),
    ] = False,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity",
            metavar="REPOSITORY",
            help="The repository the signatures must name (default: the image's own), e.g. "
            "to verify a copy of an image signed where it was built.",
        ),
    ] = None,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify an image's cosign signatures: those under its sha256-<hex>.sig tag and its
    signature referrers. Each is checked over the exact payload bytes, and the payload must
    name the image's digest and repository. Exits 0 only when a valid signature by one of the
    keys is found (for every image, with --all-platforms), and says which key matched;
    otherwise prints why each signature was refused and exits 1.

    Keyless signatures (a Fulcio certificate and a Rekor bundle) are verified offline: the
    certificate must chain to a given root at the time Rekor logged the signature, and Rekor's
    signed entry timestamp must verify with a given Rekor key.

    With --trust-store DIR instead, the image's notation signatures (JWS or COSE envelopes,
    found as referrers) are checked: the certificate chain up to a root in DIR, valid at
    signing time and now, for code signing, and the signature over the image's digest, size
    and media type."""
    if trust_store is not None:
        cosign_options = (
            key,
            certificate_root,
            rekor_key,
            trusted_root,
            certificate_identity,
            certificate_oidc_issuer,
            all_platforms,
            identity,
        )
        if any(cosign_options):
            raise fail(
                "--trust-store verifies notation signatures; the other options are for "
                "cosign's: run `dockyard verify` once for each",
                USAGE,
            )
        verify_with_trust_store(reference, trust_store, insecure, ca_cert, as_json)
        return
    trusted = read_public_keys(key or [])
    keyless = keyless_trust(
        certificate_root or [],
        rekor_key or [],
        trusted_root,
        certificate_identity,
        certificate_oidc_issuer,
    )
    if not trusted and keyless is None:
        raise fail(
            "name a public key (--key) or certificate roots to verify with "
            "(or notation's roots with --trust-store)",
            USAGE,
        )
    result: Verification = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.verify(
            reference, trusted, all_platforms=all_platforms, identity=identity, keyless=keyless
        ),
        reference,
    )
    if as_json:
        typer.echo(json.dumps(_as_json(result), indent=2))
    else:
        _print(reference, result)
    if not result.valid:
        raise typer.Exit(FAILED)


def _print(reference: str, result: Verification) -> None:
    for image in result.images:
        name = pinned(reference, image.digest)
        if image.platform:
            name += f" ({image.platform})"
        if not image.findings:
            typer.echo(
                f"{name}: no signatures found (looked under the tag sha256-<hex>.sig and "
                "for signature referrers)",
                err=True,
            )
            continue
        if image.valid:
            typer.echo(f"Verified {name}: signed by {', '.join(image.matched_keys)}")
        else:
            typer.echo(f"{name}: no valid signature by the given keys", err=True)
        for finding in image.findings:
            typer.echo(f"  {finding.message()}", err=not image.valid)


def _as_json(result: Verification) -> dict[str, object]:
    return {
        "reference": result.reference,
        "verified": result.valid,
        "images": [
            {
                "digest": image.digest,
                "platform": image.platform,
                "verified": image.valid,
                "keys": image.matched_keys,
                "signatures": [
                    {
                        "where": finding.where,
                        "layer": finding.layer,
                        "valid": finding.valid,
                        "failure": (
                            finding.verdict.failure.name
                            if finding.verdict and finding.verdict.failure
                            else None
                        ),
                        "message": finding.message(),
                    }
                    for finding in image.findings
                ],
            }
            for image in result.images
        ],
    }
