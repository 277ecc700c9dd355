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
    from dockyard.core import keys

PASSWORD_ENV = "DOCKYARD_KEY_PASSWORD"

key_app = typer.Typer(help="Signing keys (ECDSA P-256, PEM, as cosign uses).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON, for scripts.")]


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


def _private_key(path: Path) -> keys.PrivateKey:
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
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign an image in cosign's key-based format: the signature is added to the image's
    sha256-<hex>.sig tag (other signatures there are kept), so cosign, `dockyard verify` and
    policy engines find it. A tag is resolved first and its digest is what gets signed."""
    from dockyard.core.reference import parse_reference

    private = _private_key(key)
    signed = run_client(
        insecure, ca_cert, 4, lambda c: c.sign(reference, private, referrer=referrers), reference
    )
    ref = parse_reference(reference.removeprefix("docker://"))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "reference": reference,
                    "digest": signed.digest,
                    "signatureTag": signed.tag,
                    "signatureManifest": signed.tag_manifest,
                    "referrer": signed.referrer,
                }
            )
        )
        return
    if ref.digest is None:
        typer.echo(f"{ref} is {signed.digest}; signing the digest, not the tag")
    typer.echo(f"Signed {pinned(reference, signed.digest)}")
    typer.echo(f"Signature stored under tag {signed.tag} ({signed.tag_manifest})")
    if signed.referrer:
        typer.echo(f"Signature stored as referrer {signed.referrer}")


def _public_keys(paths: list[Path]) -> list[tuple[str, keys.PublicKey]]:
    from dockyard.core import keys

    trusted = []
    for path in paths:
        try:
            trusted.append((str(path), keys.load_public_key(_read(path, "public key"))))
        except keys.KeyMaterialError as exc:
            raise fail(f"{path}: {exc}", USAGE) from None
    return trusted


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

    With --trust-store DIR instead of --key, the image's notation signatures (JWS or COSE
    envelopes, found as referrers) are checked: the certificate chain up to a root in DIR,
    valid at signing time and now, for code signing, and the signature over the image's
    digest, size and media type."""
    if trust_store is not None:
        if key or all_platforms or identity:
            raise fail(
                "--trust-store verifies notation signatures; --key, --all-platforms and "
                "--identity are for cosign's: run `dockyard verify` once for each",
                USAGE,
            )
        verify_with_trust_store(reference, trust_store, insecure, ca_cert, as_json)
        return
    if not key:
        raise fail("name a public key with --key (or notation's roots with --trust-store)", USAGE)
    trusted = _public_keys(key)
    result: Verification = run_client(
        insecure,
        ca_cert,
        4,
        lambda c: c.verify(reference, trusted, all_platforms=all_platforms, identity=identity),
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
