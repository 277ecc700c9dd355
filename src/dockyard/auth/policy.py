"""What a principal may do with a repository: roles in its namespace, visibility, token scope.

A repository's namespace is its first path component: `alice/app` belongs to the user alice,
`acme/api` to the organisation acme. Owners and maintainers push and delete, readers pull, and
anyone pulls a public repository. An access token never grants more than its scope, nor more
than its owner has. A repository that does not exist is nobody's to pull, so a private one is
indistinguishable from a missing one.
"""

from __future__ import annotations

from dockyard.auth.scopes import ALL_ACTIONS, DELETE, PULL, PUSH
from dockyard.service.accounts import Principal

ROLE_ACTIONS = {
    "reader": frozenset({PULL}),
    "maintainer": frozenset({PULL, PUSH, DELETE}),
    "owner": frozenset({PULL, PUSH, DELETE}),
}
TOKEN_SCOPE_ACTIONS = {
    "read": frozenset({PULL}),
    "write": frozenset({PULL, PUSH}),
    "delete": frozenset({PULL, PUSH, DELETE}),
}


def namespace_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def repository_actions(
    principal: Principal, repository: str, visibility: str | None
) -> frozenset[str]:
    """`visibility` is None when the repository does not exist yet."""
    if principal.is_admin:
        actions = ALL_ACTIONS
    else:
        actions = ROLE_ACTIONS.get(principal.roles.get(namespace_of(repository), ""), frozenset())
        if visibility == "public":
            actions = actions | {PULL}
    if principal.token_scope is not None:
        actions = actions & TOKEN_SCOPE_ACTIONS.get(principal.token_scope, frozenset())
    return actions


def may_administer(principal: Principal, namespace: str) -> bool:
    """Settings of a namespace (visibility, members): its owners and administrators, and never
    through an access token, whatever its scope (scopes are about images, not accounts)."""
    if principal.token_scope is not None:
        return False
    return principal.is_admin or principal.roles.get(namespace) == "owner"


def may_see_members(principal: Principal, org: str) -> bool:
    """Who belongs to an organisation, and with which role: its members (whatever their role)
    and administrators."""
    return principal.is_admin or org in principal.roles
