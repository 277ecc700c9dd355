"""`dockyard verify --trust-store DIR REF`: notation signatures checked against X.509 roots.

`dockyard verify` (cli/signing.py) hands over here when it is given a trust store; this module
prints what was found and says how the command ends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.exits import FAILED
from dockyard.cli.images import pinned, run_client

if TYPE_CHECKING:
    from dockyard.client.api import Client
    from dockyard.client.notation import NotationReport, NotVerified

TrustStoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust-store",
        metavar="DIR",
        help="Verify notation signatures instead: trust the X.509 roots in DIR (a folder of "
        "PEM or DER certificates, notation's truststore/ layout included, or one file).",
    ),
]


def verify_with_trust_store(
    reference: str, trust_store: Path, insecure: bool, ca_cert: list[Path] | None, as_json: bool
) -> None:
    """Verify and print; ends the command with exit 1 unless a signature holds."""
    from dockyard.client.notation import NotVerified

    async def action(client: Client) -> NotationReport | NotVerified:
        try:
            return await client.verify_notation(reference, trust_store)
        except NotVerified as exc:
            return exc

    result = run_client(insecure, ca_cert, 4, action, reference)
    if isinstance(result, NotVerified):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "reference": reference,
                        "verified": False,
                        "message": "no valid notation signature"
                        if result.failures
                        else str(result),
                        "signatures": [
                            {
                                "digest": refusal.digest,
                                "valid": False,
                                "failure": refusal.failure.value,
                                "reason": refusal.reason,
                            }
                            for refusal in result.failures
                        ],
                    },
                    indent=2,
                )
            )
        elif result.failures:
            typer.echo(f"{reference}: no valid notation signature", err=True)
            for refusal in result.failures:
                typer.echo(
                    f"  {refusal.digest}: {refusal.failure.value}: {refusal.reason}", err=True
                )
        else:
            typer.echo(
                f"{reference}: {result} (looked for referrers of type "
                "application/vnd.cncf.notary.signature)",
                err=True,
            )
        raise typer.Exit(FAILED)
    if as_json:
        typer.echo(json.dumps({"reference": reference, **result.to_json()}, indent=2))
        return
    name = pinned(reference, result.subject.digest)
    for digest, found in result.valid:
        when = found.signing_time.isoformat()
        typer.echo(
            f"Verified {name}: notation signature {digest} by {found.signer} "
            f"(trusted root {found.root}; signed {when})"
        )
    for refusal in result.refused:
        typer.echo(
            f"  also found {refusal.digest}, refused: {refusal.failure.value}: {refusal.reason}"
        )
