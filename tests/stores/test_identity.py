"""The one read behind every credential check: an account, its roles and an access token, on
every database."""

from __future__ import annotations

from dockyard.metadata.accounts import ORG, USER, AccessToken

TOKEN = AccessToken("0123456789abcdef", "alice", "ci", "a" * 64, "write", 2.0, 99.0)


def test_identity_reads_the_account_its_roles_and_its_token(meta, run) -> None:
    store = meta.accounts
    run(store.create_account("alice", USER, "hash", False, 1.0))
    run(store.create_account("bob", USER, "hash", True, 1.0))
    for org in ("acme", "beta", "gamma.io"):
        run(store.create_account(org, ORG, None, False, 1.0))
    found = run(store.identity("alice"))
    assert found is not None and found.token is None and found.roles == {}
    assert found.account == run(store.get_account("alice"))
    run(store.set_membership("acme", "alice", "owner"))
    run(store.set_membership("gamma.io", "alice", "reader"))
    run(store.set_membership("beta", "bob", "maintainer"))
    run(store.create_token(TOKEN))
    run(store.revoke_token("alice", "ci", 50.0))
    for name in ("alice", None):
        found = run(store.identity(name, TOKEN.id))
        assert found is not None
        assert found.account == run(store.get_account("alice"))
        assert found.roles == {"acme": "owner", "gamma.io": "reader"}
        assert found.token == run(store.get_token(TOKEN.id))
        assert found.token is not None and found.token.revoked_at == 50.0
    bob = run(store.identity("bob"))
    assert bob is not None and bob.account.is_admin is True and bob.roles == {"beta": "maintainer"}
    # A token is nobody else's; nothing is found for names or tokens that are not there.
    assert run(store.identity("bob", TOKEN.id)) is None
    assert run(store.identity("alice", "fedcba9876543210")) is None
    assert run(store.identity(None, "fedcba9876543210")) is None
    assert run(store.identity("nobody")) is None
    assert run(store.identity("nul\x00name")) is None
    assert run(store.identity(None, "nul\x00")) is None
    # Roles follow memberships, and an organisation has an identity with no roles.
    run(store.remove_membership("gamma.io", "alice"))
    assert run(store.identity("alice")).roles == {"acme": "owner"}
    acme = run(store.identity("acme"))
    assert acme is not None and acme.account.kind == ORG and acme.roles == {}
