"""`dockyard policy signed …`: the signature policy of a namespace or repository, on the store
named by --data-dir/--config (also while `dockyard serve` runs on it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import USAGE, fail
from dockyard.cli.folder import InitOpt

if TYPE_CHECKING:
    from dockyard.metadata.base import SignaturePolicy

HELP = (
    "Serve only signed images: manifests of the repositories in SCOPE are served only when "
    "the repository holds a valid signature of their digest, by one of the --key public keys "
    "(cosign format, as `dockyard sign` makes) or chaining to a root of the --trust-store "
    "(notation). Signatures, attestations and other referrers are always served, and so are "
    "HEAD requests and blobs. A repository's own policy replaces its namespace's.\n\n"
    "  dockyard policy signed SCOPE --key cosign.pub [--trust-store DIR] [--mode enforce]\n\n"
    "  dockyard policy signed list SCOPE\n\n"
    "  dockyard policy signed remove SCOPE"
)
ACTIONS = ("set", "list", "remove")


def _describe(policy: SignaturePolicy) -> str:
    keys = len(policy.public_keys)
    roots = len(policy.roots)
    return (
        f"{policy.scope}\t{policy.mode}\t{keys} key{'s' if keys != 1 else ''}, "
        f"{roots} root{'s' if roots != 1 else ''}\tversion {policy.version}"
    )


def _certificates(trust_store: Path) -> list[str]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from dockyard.core.trust_store import TrustStoreError, load_trust_store

    try:
        roots = load_trust_store(trust_store)
    except TrustStoreError as exc:
        raise fail(f"trust store: {exc}", USAGE) from None
    return [root.public_bytes(Encoding.PEM).decode() for root in roots]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read it ({exc})", USAGE) from None


def register(policy_app: typer.Typer) -> None:
    @policy_app.command("signed", help=HELP)
    def signed(
        words: Annotated[
            list[str],
            typer.Argument(
                help="SCOPE (a namespace or repository) to set its policy; `list SCOPE` or "
                "`remove SCOPE`.",
                metavar="[list|remove] SCOPE",
            ),
        ],
        key: Annotated[
            list[Path] | None,
            typer.Option("--key", help="A PEM public key whose signatures count (repeatable)."),
        ] = None,
        trust_store: Annotated[
            Path | None,
            typer.Option(
                "--trust-store",
                help="Notation roots: a certificate file or a folder of them (notation's "
                "x509/ca/<name>/ layout too).",
            ),
        ] = None,
        mode: Annotated[
            str,
            typer.Option(
                "--mode",
                help="enforce: refuse unsigned manifests (DENIED); warn: serve them with a "
                "Warning header and a log line; off: keep the policy, check nothing.",
            ),
        ] = "enforce",
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        init: InitOpt = False,
    ) -> None:
        action, scope = _action(words)
        if action == "list":
            found = on_store(
                config, data_dir, lambda r: r.signature_policies.policies(scope), init=init
            )
            for policy in found:
                typer.echo(_describe(policy))
            if not found:
                typer.echo(f"no signature policy on {scope}")
            return
        if action == "remove":
            if not on_store(
                config, data_dir, lambda r: r.signature_policies.remove(scope), init=init
            ):
                raise fail(f"no signature policy on {scope}", USAGE)
            typer.echo(f"removed the signature policy of {scope}")
            return
        public_keys = [_read(path) for path in key or []]
        roots = _certificates(trust_store) if trust_store is not None else []
        if not public_keys and not roots:
            raise fail("name at least one --key or a --trust-store", USAGE)
        policy = on_store(
            config,
            data_dir,
            lambda r: r.signature_policies.set(scope, public_keys, roots, mode),
            init=init,
        )
        typer.echo(f"signature policy set: {_describe(policy)}")


def _action(words: list[str]) -> tuple[str, str]:
    if len(words) == 1 and words[0] not in ACTIONS:
        return "set", words[0]
    if len(words) == 2 and words[0] in ACTIONS:
        return words[0], words[1]
    raise fail("usage: dockyard policy signed [set|list|remove] SCOPE", USAGE)
