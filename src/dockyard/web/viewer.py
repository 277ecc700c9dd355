"""Who is looking at a page, and what they may see: asked of `auth.policy` through the access
gate, the same code that answers the registry API, so a page never shows what a pull would
refuse.

Without accounts (zero-configuration serve on loopback) there is nobody to sign in as and
everyone may pull everything: every repository is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from dockyard.auth.requests import Caller, client_address, plain_address
from dockyard.auth.scopes import PULL
from dockyard.service.accounts import ANONYMOUS, Principal
from dockyard.service.audit import acting
from dockyard.web import sessions
from dockyard.web.site import auth_of, registry_of, site_of

VIEWER_KEY = "dockyard.viewer"


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal | None  # None: the registry runs without accounts
    session: sessions.Session
    csrf: str  # the token this viewer's forms carry
    address: str
    fresh_cookie: str | None = None  # a new session to set on the answer

    @property
    def accounts(self) -> bool:
        return self.principal is not None

    @property
    def signed_in(self) -> bool:
        return self.principal is not None and not self.principal.anonymous

    @property
    def name(self) -> str:
        return self.principal.name if self.principal is not None else ""

    @property
    def is_admin(self) -> bool:
        return self.principal is not None and self.principal.is_admin


def address_of(request: Request) -> str:
    """The client's address; X-Forwarded-For counts only from a trusted proxy."""
    client = request.scope.get("client")
    peer = client[0] if client else ""
    auth = auth_of(request)
    if auth is None or not auth.gate.trusted:
        return plain_address(peer)
    return client_address(peer, request.headers.get("x-forwarded-for"), auth.gate.trusted)


async def session_ended(request: Request, session: sessions.Session) -> bool:
    counters = registry_of(request).counters
    count, _ = await counters.peek(sessions.ENDED_PREFIX + session.sid, sessions.SESSION_SECONDS)
    return count > 0


async def end_session(request: Request, session: sessions.Session, now: float) -> None:
    """Mark the session ended in the shared counters for as long as its cookie could still be
    presented: counted in the fixed window holding now and in the next, which together cover
    the session's remaining lifetime."""
    counters = registry_of(request).counters
    key = sessions.ENDED_PREFIX + session.sid
    window = sessions.SESSION_SECONDS
    await counters.hit(key, window, now=now)
    await counters.hit(key, window, now=now + window)


async def viewer_of(request: Request) -> Viewer:
    """The viewer of this request (worked out once per request)."""
    known: Viewer | None = request.scope.get(VIEWER_KEY)
    if known is not None:
        return known
    registry = registry_of(request)
    key = await site_of(request).key(registry)
    raw = request.cookies.get(sessions.COOKIE)
    session = sessions.decode(raw, key) if raw else None
    principal: Principal | None = None
    if auth_of(request) is not None:
        principal = ANONYMOUS
        if session is not None and session.account:
            found = None
            if not await session_ended(request, session):
                # None once the password changed (the stamp moved) or the account is gone.
                found = await registry.accounts.principal(session.account, stamp=(session.stamp,))
            if found is not None:
                principal = found
            elif not await registry.accounts.is_disabled(session.account):
                session = None  # signed out, or no longer valid: a new anonymous session
            # A disabled account's session is kept, unused, as its tokens are: enabling the
            # account signs this browser in again.
    fresh = None
    if session is None:
        session = sessions.start()
        fresh = sessions.encode(session, key)
    viewer = Viewer(
        principal, session, sessions.csrf_token(session, key), address_of(request), fresh
    )
    request.scope[VIEWER_KEY] = viewer
    if principal is not None:
        acting(principal.name, principal.token_name, viewer.address)
    return viewer


async def may_see(request: Request, viewer: Viewer, repository: str) -> bool:
    """Whether the viewer may pull `repository` (an existing one: a missing repository is
    nobody's to see, which callers tell with the same answer)."""
    auth = auth_of(request)
    if auth is None or viewer.principal is None:
        return True
    return PULL in await auth.gate.actions_for(viewer.principal, repository)


async def visible(request: Request, viewer: Viewer, repositories: list[str]) -> list[str]:
    """Those of `repositories` the viewer may pull, in the order given."""
    auth = auth_of(request)
    if auth is None or viewer.principal is None:
        return list(repositories)
    return await auth.gate.may_pull(Caller(viewer.principal, None, viewer.address), repositories)
