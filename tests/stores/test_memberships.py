"""Memberships and a namespace's default visibility on every database: an organisation with
owners always keeps one, even when its owners demote or remove each other at the same moment;
and a namespace's new default reaches only repositories created after it."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.metadata.accounts import ORG, USER, LastOwner
from tests.stores.test_repository_queries import BASE, IMAGE, push_image


def accounts(meta, run, org: str, *users: str) -> None:
    store = meta.accounts
    run(store.create_account(org, ORG, None, False, 1.0))
    for user in users:
        run(store.create_account(user, USER, "x", False, 1.0))


def test_the_only_owner_is_neither_demoted_nor_removed(meta, run) -> None:
    store = meta.accounts
    accounts(meta, run, "acme", "alice", "bob")
    run(store.set_membership("acme", "alice", "owner"))
    run(store.set_membership("acme", "bob", "reader"))
    for role in ("maintainer", "reader"):
        with pytest.raises(LastOwner):
            run(store.set_membership("acme", "alice", role))
    with pytest.raises(LastOwner):
        run(store.remove_membership("acme", "alice"))
    assert run(store.members("acme")) == {"alice": "owner", "bob": "reader"}
    # Staying owner is no change; with a second owner, the first may go.
    run(store.set_membership("acme", "alice", "owner"))
    run(store.set_membership("acme", "bob", "owner"))
    run(store.set_membership("acme", "alice", "reader"))
    assert run(store.remove_membership("acme", "alice")) is True
    assert run(store.members("acme")) == {"bob": "owner"}
    assert run(store.remove_membership("acme", "alice")) is False
    with pytest.raises(KeyError):
        run(store.set_membership("acme", "nobody", "reader"))
    with pytest.raises(KeyError):
        run(store.set_membership("alice", "bob", "reader"))  # a user is no organisation


def test_two_owners_demoting_each_other_at_once_leave_one(meta, run) -> None:
    store = meta.accounts
    accounts(meta, run, "acme", "alice", "bob")
    for round_ in range(4):
        run(store.set_membership("acme", "alice", "owner"))
        run(store.set_membership("acme", "bob", "owner"))
        if round_ % 2:
            changes = [
                store.set_membership("acme", "alice", "reader"),
                store.set_membership("acme", "bob", "reader"),
            ]
        else:
            changes = [
                store.remove_membership("acme", "alice"),
                store.remove_membership("acme", "bob"),
            ]

        async def both(changes: list = changes) -> list:
            return await asyncio.gather(*changes, return_exceptions=True)

        outcomes = run(both())
        refused = [o for o in outcomes if isinstance(o, LastOwner)]
        assert len(refused) == 1, outcomes
        owners = [u for u, role in run(store.members("acme")).items() if role == "owner"]
        assert len(owners) == 1, run(store.members("acme"))


def test_a_new_default_visibility_reaches_only_new_repositories(meta, run) -> None:
    store = meta.accounts
    accounts(meta, run, "acme")
    push_image(meta, run, "acme/old", IMAGE, {BASE: 10}, "v1")
    push_image(meta, run, "acme/own", IMAGE, {BASE: 10}, "v1")
    run(store.set_visibility("acme/own", "public"))
    push_image(meta, run, "acme/gone", IMAGE, {BASE: 10}, "v1")
    assert run(meta.delete_repository("acme/gone")) is not None
    push_image(meta, run, "acmex/other", IMAGE, {BASE: 10}, "v1")

    assert run(store.set_namespace_default("acme", "public", "private")) is True
    push_image(meta, run, "acme/new", IMAGE, {BASE: 10}, "v1")
    push_image(meta, run, "acme/gone", IMAGE, {BASE: 10}, "v2")  # pushed again: new
    facts = {
        name: run(store.visibility_facts(name))
        for name in ("acme/old", "acme/own", "acme/new", "acme/gone", "acmex/other")
    }
    assert facts["acme/old"] == (True, "private", "public")  # kept what it had
    assert facts["acme/own"] == (True, "public", "public")
    assert facts["acme/new"] == (True, None, "public")
    assert facts["acme/gone"] == (True, None, "public")
    assert facts["acmex/other"] == (True, None, None)  # another namespace is untouched

    # Back to the registry's default, which is what acme/new has now: it keeps public.
    assert run(store.set_namespace_default("acme", None, "private")) is True
    assert run(store.visibility_facts("acme/new")) == (True, "public", None)
    assert run(store.visibility_facts("acme/old")) == (True, "private", None)
    # No change, nothing pinned: acme/later follows the default it was created under.
    push_image(meta, run, "acme/later", IMAGE, {BASE: 10}, "v1")
    assert run(store.set_namespace_default("acme", "private", "private")) is True
    assert run(store.visibility_facts("acme/later")) == (True, None, "private")
    assert run(store.set_namespace_default("nobody", "public", "private")) is False
    assert run(store.set_namespace_default("acme\x00", "public", "private")) is False
