"""The access decision for one request: who is asking, and may they do what it needs.

Answers follow the Docker token spec so every client's login flow works: no or insufficient
credentials get 401 with a `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge (with
`error="insufficient_scope"` when a token lacks what its account may do); an identified
caller who can see a repository but whose account may not do this to it gets 403 DENIED. A
repository the caller may not see is answered exactly as a missing one would be.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Final, Protocol

from dockyard.auth.policy import TOKEN_SCOPE_ACTIONS, repository_actions
from dockyard.auth.pull_counting import PullCounter
from dockyard.auth.requests import Caller, Need, client_key, decode_basic
from dockyard.auth.scopes import DELETE, PULL, PUSH
from dockyard.auth.tokens import InvalidToken, TokenAuthority, TokenClaims
from dockyard.config import Settings
from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.accounts import ANONYMOUS, TOKEN_PREFIX, AccountService, Principal
from dockyard.service.audit import Actor

if TYPE_CHECKING:
    from dockyard.proxy.service import ProxyService

# How long a checked Basic credential or a bearer subject's account is trusted in memory, so
# long as the accounts' version (see `_keep_current`) has not moved.
IDENTITY_CACHE_SECONDS = 10.0
# How long the token endpoint trusts a password it checked: docker and its kin ask /token for
# every repository they touch, each time with the password, and bcrypt is deliberately slow.
# What is kept is a keyed hash under a key of this process's own (never the password, nor a
# hash anyone could test guesses against), dropped with every other memory when the accounts
# change, and voided by a password change at once (the account's stamp is read every time).
TOKEN_PASSWORD_SECONDS = 60.0
# How often each process asks whether accounts changed: a revocation, a deletion, a password
# change or a removed member reaches every worker and replica within this (and one read).
ACCESS_VERSION_SECONDS = 0.5
# Failed logins an account may collect from all addresses together, in limits per address:
# guesses from many machines end, while one address's guesses lock out nobody else.
ACCOUNT_LIMIT_FACTOR = 10
# How long a token refused a need with 401 insufficient_scope is remembered (see authorize).
INSUFFICIENT_WINDOW_SECONDS = 600
# How many checked passwords and bearer subjects are remembered; and how many bearer callers,
# token grants and pull-limit plans: bounded whatever clients send.
REMEMBERED_LOGINS = 1000
REMEMBERED_BEARERS = 10_000


@dataclass(frozen=True, slots=True)
class _Login:
    """A checked login: who it was, as read when the accounts' version was `version`."""

    version: int
    principal: Principal


class _Missing(Enum):
    """Tells a memory that holds None (an account found gone) from no memory at all."""

    MISSING = 0


_MISSING: Final = _Missing.MISSING

# The most demanding action of a need names it in messages.
_VERBS = ((DELETE, "deleting"), (PUSH, "pushing"), (PULL, "pulling"))


class Counters(Protocol):
    """Windowed counters shared by every worker (see metadata.counters)."""

    async def hit(
        self, key: str, window_seconds: int, amount: int = 1, now: float | None = None
    ) -> tuple[int, float]: ...

    async def peek(self, key: str, window_seconds: int) -> tuple[int, float]: ...

    def peek_now(self, key: str, window_seconds: int) -> int | None:
        """The count without awaiting, or None where that needs a round trip."""
        ...


class AccessGate:
    def __init__(
        self,
        settings: Settings,
        accounts: AccountService,
        tokens: TokenAuthority,
        counters: Counters,
        proxy: ProxyService | None = None,
    ) -> None:
        self.settings = settings
        self.proxy = proxy
        self.accounts = accounts
        self.tokens = tokens
        self.counters = counters
        self.pulls = PullCounter(counters)
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        # Checked passwords and access tokens (see `login`), by a keyed hash of them.
        self._basic: BoundedCache[bytes, _Login] = BoundedCache(
            REMEMBERED_LOGINS, max_age=TOKEN_PASSWORD_SECONDS
        )
        self._password_key = secrets.token_bytes(32)  # this process's, never stored
        self._subjects: BoundedCache[tuple[object, ...], Principal | None] = BoundedCache(
            REMEMBERED_LOGINS, max_age=IDENTITY_CACHE_SECONDS
        )
        # Bearer callers by (Authorization header, address), trusted no longer than the token
        # and the subject's account: one lookup instead of a token check and an account check.
        self._bearers: BoundedCache[tuple[str, str], Caller] = BoundedCache(REMEMBERED_BEARERS)
        # (Authorization, address, repository, actions) -> caller for bearers whose token
        # covers the actions and whose account (or the repository's visibility) still allows
        # them: a token-bearing pull's whole check in one lookup.
        self._grants: BoundedCache[tuple[str, str, str, tuple[str, ...]], Caller] = BoundedCache(
            REMEMBERED_BEARERS
        )
        self._limits: BoundedCache[int, tuple[Caller, tuple[int, str, str] | None]] = BoundedCache(
            REMEMBERED_BEARERS
        )
        # Everything above is trusted only while the accounts' version read at `_checked`
        # (monotonic, when the read began) is at most ACCESS_VERSION_SECONDS old.
        self._version: int | None = None
        self._checked = -ACCESS_VERSION_SECONDS
        self._flushes = 0  # how many times the memories were dropped
        self._reading: asyncio.Lock | None = None

    # -- keeping remembered sessions current --------------------------------------------
    def _current(self) -> bool:
        return time.monotonic() - self._checked < ACCESS_VERSION_SECONDS

    async def _keep_current(self) -> None:
        """Drop every remembered session when the accounts' version moved; read at most every
        ACCESS_VERSION_SECONDS, by one request at a time."""
        if self._current():
            return
        if self._reading is None:
            self._reading = asyncio.Lock()
        async with self._reading:
            if self._current():
                return
            await self._read_version()

    async def _read_version(self) -> int:
        """The accounts' version, read now (one lookup by key); the memories of sessions are
        dropped when it moved."""
        began = time.monotonic()
        version = await self.accounts.access_version()
        if version != self._version:
            self._forget()
            self._version = version
        self._checked = max(self._checked, began)
        return version

    def _forget(self) -> None:
        """Logins (`_basic`) stay: each is checked against the version it was made at."""
        self._flushes += 1
        self._subjects.clear()
        self._bearers.clear()
        self._grants.clear()
        self._limits.clear()

    # -- challenges ----------------------------------------------------------------------
    def realm(self, base_url: str) -> str:
        return self.settings.token_realm or base_url.rstrip("/") + "/token"

    def challenge(self, base_url: str, need: Need | None, error: str | None = None) -> str:
        parts = [f'realm="{self.realm(base_url)}"', f'service="{self.settings.token_service}"']
        if need is not None and need.scope:
            parts.append(f'scope="{need.scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    def _unauthorized(
        self, base_url: str, need: Need | None, error: str | None = None, message: str | None = None
    ) -> RegistryError:
        detail = None
        if need is not None and need.kind == "repository":
            detail = [
                {"Type": "repository", "Name": need.repository, "Action": action}
                for action in sorted(need.actions)
            ]
        return RegistryError(
            ErrorCode.UNAUTHORIZED,
            message or "authentication required",
            detail=detail,
            headers={"WWW-Authenticate": self.challenge(base_url, need, error)},
        )

    # -- identification ------------------------------------------------------------------
    async def identify(
        self,
        authorization: str | None,
        address: str,
        base_url: Callable[[], str],
        *,
        fresh: bool = False,
    ) -> Caller:
        """Who sent `authorization`. A bearer token seen in the last seconds is answered by
        `known_bearer` without awaiting; the HTTP layer asks it first."""
        if not authorization:
            return Caller(ANONYMOUS, None, address)
        await self._keep_current()
        flushes = self._flushes
        now = time.monotonic()
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            known = None if fresh else self._known(authorization, address)
            if known is not None:  # the same caller object: its pull-limit plan is kept
                return known
            try:
                claims = self.tokens.verify(credentials.strip())
            except InvalidToken:
                raise self._unauthorized(
                    base_url(), None, "invalid_token", "the bearer token is invalid or expired"
                ) from None
            principal = await self._subject(claims, fresh) if claims.subject else ANONYMOUS
            if principal is None:
                raise self._unauthorized(
                    base_url(),
                    None,
                    "invalid_token",
                    "this token was revoked or its account changed; request a new one",
                )
            caller = Caller(principal, claims, address)
            if flushes != self._flushes:
                return caller  # read before the memories were dropped: not remembered
            lifetime = min(IDENTITY_CACHE_SECONDS, claims.expires_at - time.time())
            self._bearers.put((authorization, address), caller, expires_at=now + lifetime)
            return caller
        if scheme == "basic":
            username, password = decode_basic(credentials)
            principal = await self.login(username, password, address, fresh=fresh)
            if principal is None:
                raise self._unauthorized(base_url(), None, None, "incorrect username or password")
            return Caller(principal, None, address)
        raise self._unauthorized(base_url(), None, None, "unsupported authorization scheme")

    def known_bearer(self, authorization: str, address: str) -> Caller | None:
        """The caller behind a bearer token seen in the last seconds: a lookup, not awaited."""
        return self._known(authorization, address)

    def _known(self, authorization: str, address: str) -> Caller | None:
        if not self._current():
            return None  # `identify` reads the accounts' version first
        return self._bearers.get((authorization, address))

    def granted(
        self, authorization: str, address: str, repository: str, actions: tuple[str, ...]
    ) -> Caller | None:
        """The caller, when `authorize` let this bearer do `actions` to `repository` in the
        last seconds; None when the full check must run."""
        if not self._current():
            return None
        return self._grants.get((authorization, address, repository, actions))

    def _remember_grant(
        self, bearer: tuple[str, str], need: Need, caller: Caller, flushes: int
    ) -> None:
        """Remember a confirmed token grant no longer than the bearer itself (so never past
        the token's expiry), unless the memories were dropped since the check began."""
        known = self._known(*bearer)
        expires_at = self._bearers.deadline(bearer)
        if known is not caller or expires_at is None or flushes != self._flushes:
            return
        assert need.repository is not None
        self._grants.put(
            (*bearer, need.repository, tuple(sorted(need.actions))), caller, expires_at=expires_at
        )

    def _password_memory_key(self, username: str, password: str) -> bytes:
        """What a checked password is remembered under: an HMAC with this process's random
        key, so that the memory holds nothing a password could be recovered or tested from."""
        message = username.encode() + b"\0" + password.encode()
        return hmac.digest(self._password_key, message, "sha256")

    async def login(
        self,
        username: str,
        password: str,
        address: str,
        *,
        fresh: bool = False,
        remember_seconds: float = IDENTITY_CACHE_SECONDS,
    ) -> Principal | None:
        """Check credentials; None when wrong.

        Passwords are guessed, so their checks (bcrypt, deliberately slow) are throttled per
        (account, address) and per account, each attempt counted before its check runs.
        Access tokens (`dyt_…`) cannot be guessed and cost one hash: never throttled, so one
        account's guesser locks out no token, not even that account's.

        A successful check is remembered for `remember_seconds` (a few on the registry's hot
        path, TOKEN_PASSWORD_SECONDS at the token endpoint), with the principal it found,
        under a keyed hash of the credentials (`_password_memory_key`). Every use reads the
        accounts' version first: while it has not moved, nothing about any account, role or
        token has changed and the principal stands; once it moved, the account (and the
        token) are read again, so a revocation, a password change, a removal or a changed
        role counts at the next request, on every worker. A remembered check is neither
        counted nor throttled, as it guesses nothing. `fresh` (the sign-in page, the account
        API) always checks.
        """
        is_token = password.startswith(TOKEN_PREFIX)
        key = self._password_memory_key(username, password)
        version = await self._read_version()
        known = None if fresh else self._basic.get(key)
        if known is not None:
            if known.version == version:
                return known.principal
            # Something changed somewhere since: is it still this account's, as it was?
            principal = None
            if is_token:
                principal = await self.accounts.authenticate(username, password)
            elif known.principal.stamp is not None:
                # The password alone is checked by its stamp's first item (a change of the
                # account's rights changes no password); roles are read afresh.
                principal = await self.accounts.principal(username, stamp=known.principal.stamp[:1])
            deadline = self._basic.deadline(key)
            if principal is not None and deadline is not None:
                self._basic.put(key, _Login(version, principal), expires_at=deadline)
                return principal
            self._basic.pop(key)
            if is_token:
                await self._failed(username, address, "token")
                return None
        if is_token:
            principal = await self.accounts.authenticate(username, password)
            if principal is None:
                await self._failed(username, address, "token")
            elif not fresh:
                self._remember(key, version, principal, remember_seconds)
            return principal
        attempt = await self._count_attempt(username, address)
        try:
            principal = await self.accounts.authenticate(username, password)
        except BaseException:
            await self._uncount(attempt)
            raise
        if principal is None:
            await self._failed(username, address, "password")
            return None  # the attempt stays counted: it failed
        await self._uncount(attempt)
        if not fresh:
            self._remember(key, version, principal, remember_seconds)
        return principal

    def _remember(self, key: bytes, version: int, principal: Principal, seconds: float) -> None:
        """Keep a checked login no longer than `seconds`, nor past its access token's expiry."""
        now = time.monotonic()
        until = now + seconds
        if principal.token_expires_at is not None:
            until = min(until, now + principal.token_expires_at - time.time())
        self._basic.put(key, _Login(version, principal), expires_at=until)

    async def _failed(self, username: str, address: str, kind: str) -> None:
        """A failed login in the audit log: the name tried and the address, never the secret."""
        await self.accounts.audit.record(
            "login.failed",
            username[:255],
            detail={"with": kind},
            actor=Actor(None, None, address),
        )

    def _throttle_keys(self, username: str, address: str) -> list[tuple[str, int]]:
        """The counters an attempt goes to, with their limits: (account, address) first."""
        limit = self.settings.login_failure_limit
        if limit <= 0:
            return []
        # Bounded keys whatever was sent; an IPv6 client owns its whole /64, so it counts as one.
        account = hashlib.sha256(username.encode()).hexdigest()[:32]
        try:
            address = client_key(str(ipaddress.ip_address(address)))
        except ValueError:
            address = hashlib.sha256(address.encode()).hexdigest()[:32]
        return [
            (f"login-fail:pair:{account}:{address}", limit),
            (f"login-fail:account:{account}", limit * ACCOUNT_LIMIT_FACTOR),
        ]

    async def _count_attempt(self, username: str, address: str) -> list[tuple[str, float]]:
        """Count a password attempt before it is checked, atomically in the shared counters,
        so concurrent guesses cannot all pass a check made before any of them was counted;
        raises TOOMANYREQUESTS over a limit. Returns what to give back should it succeed."""
        window = self.settings.login_failure_window_seconds
        now = time.time()
        counted: list[tuple[str, float]] = []
        for key, limit in self._throttle_keys(username, address):
            count, reset = await self.counters.hit(key, window, 1, now=now)
            counted.append((key, now))
            if count > limit:
                # Not checked, so given back to the counters it passed (the account's is
                # not used up by one address's refused guesses); the one over stays over.
                await self._uncount(counted[:-1])
                raise RegistryError(
                    ErrorCode.TOOMANYREQUESTS,
                    "too many failed logins; try again later",
                    headers={"Retry-After": str(max(1, int(reset)))},
                )
        return counted

    async def _uncount(self, counted: list[tuple[str, float]]) -> None:
        """Give attempts back (a successful login, or one refused): in the window they were
        counted in, so a new window never starts below zero."""
        window = self.settings.login_failure_window_seconds
        for key, at in counted:
            await self.counters.hit(key, window, -1, now=at)

    async def _subject(self, claims: TokenClaims, fresh: bool = False) -> Principal | None:
        # Tokens minted for different states of the account must not share an answer.
        key = (claims.subject, claims.credential, claims.stamp or claims.issued_at)
        cached = _MISSING if fresh else self._subjects.get(key, _MISSING)
        now = time.monotonic()
        if cached is not _MISSING:
            return cached
        flushes = self._flushes
        principal = await self.accounts.principal(
            claims.subject, claims.credential, claims.issued_at, claims.stamp, grants=True
        )
        if flushes != self._flushes:
            return principal
        self._subjects.put(key, principal, expires_at=now + IDENTITY_CACHE_SECONDS)
        return principal

    # -- authorization -------------------------------------------------------------------
    async def authorize(
        self,
        caller: Caller,
        need: Need,
        base_url: Callable[[], str],
        connection: object = None,
        bearer: tuple[str, str] | None = None,
    ) -> None:
        """`base_url` is asked for only to build a challenge. `connection` names the client's
        connection (its address and port), to tell a client's retry from parallel requests.
        `bearer`: the (Authorization, address) the caller was identified by, so that a token
        grant confirmed here is remembered for `granted`."""
        if need.kind == "base":
            if caller.principal.anonymous and caller.claims is None:
                raise self._unauthorized(base_url(), None)
            return
        if need.kind == "catalog":
            if caller.claims is None:
                # Docker-style clients send credentials only once challenged: answering a bare
                # request with the public list would hide their own repositories from them.
                if caller.principal.anonymous:
                    raise self._unauthorized(base_url(), need)
                return
            if not any(s.type == "registry" and s.name == "catalog" for s in caller.claims.access):
                raise self._unauthorized(base_url(), need, "insufficient_scope")
            return
        assert need.repository is not None
        flushes = self._flushes
        actions = await self.actions_for(caller.principal, need.repository)
        # What the token was minted with, if its account (or, for a pull, the repository's
        # visibility) still allows it: a repository made private since is closed to tokens
        # minted while it was public.
        if need.actions <= actions and self.token_grants(caller, need):
            if bearer is not None:
                self._remember_grant(bearer, need, caller, flushes)
            return
        if caller.claims is None and need.actions <= actions:
            return  # Basic credentials, or anonymous on something public
        insufficient = "insufficient_scope" if caller.claims is not None else None
        if caller.principal.anonymous:
            raise self._unauthorized(base_url(), need, insufficient)
        if need.actions <= actions:
            # The account may do it; this token was just not issued for it. 401 with
            # insufficient_scope, as the token spec and Distribution answer, is what makes
            # clients fetch a bigger token (a 403 ends their attempt). oras-py instead sends
            # the same token once more and asks for a new one only after a 403: the same
            # token back for the same need on the same connection gets that (requests made in
            # parallel, on other connections, each get the 401).
            if await self._asked_again(caller.claims, need, connection):
                raise RegistryError(
                    ErrorCode.DENIED,
                    "the token does not cover this operation; request a new one",
                    headers={
                        "WWW-Authenticate": self.challenge(base_url(), need, "insufficient_scope")
                    },
                )
            raise self._unauthorized(base_url(), need, "insufficient_scope")
        if PULL in actions:
            raise RegistryError(
                ErrorCode.DENIED,
                await self._denial(caller.principal, need),
                detail={"repository": need.repository, "actions": sorted(need.actions)},
            )
        # Not even visible to this account: answered exactly as a missing repository.
        raise self._unauthorized(base_url(), need, insufficient)

    async def _denial(self, principal: Principal, need: Need) -> str | None:
        """Why an access token was refused, when its scope and not its account is the reason:
        a user reading only "denied" looks for a missing role, not at the token."""
        if principal.token_scope is None or need.repository is None:
            return None
        unscoped = replace(principal, token_scope=None)
        if not need.actions <= await self.actions_for(unscoped, need.repository):
            return None
        wanted = next(
            (scope for scope, granted in TOKEN_SCOPE_ACTIONS.items() if need.actions <= granted),
            None,
        )
        doing = next(verb for action, verb in _VERBS if action in need.actions)
        return (
            f"the token `{principal.token_name or principal.credential}` has scope "
            f"`{principal.token_scope}`; {doing} needs `{wanted}`"
        )

    async def _asked_again(
        self, claims: TokenClaims | None, need: Need, connection: object
    ) -> bool:
        """Whether this token was refused this need on this connection in the last minutes
        (by any worker)."""
        assert claims is not None
        granted = " ".join(sorted(str(s) for s in claims.access))
        seen = f"{claims.subject}\0{claims.issued_at}\0{claims.expires_at}\0{granted}"
        key = hashlib.sha256(f"{seen}\0{need.scope}\0{connection}".encode()).hexdigest()
        count, _ = await self.counters.hit(f"insufficient:{key}", INSUFFICIENT_WINDOW_SECONDS)
        return count > 1

    @staticmethod
    def token_grants(caller: Caller, need: Need) -> bool:
        """Whether the caller's token covers the repository actions: the whole check for a
        token-bearing pull, done without awaiting anything."""
        if caller.claims is None:
            return False
        granted: frozenset[str] = frozenset()
        for s in caller.claims.access:
            if s.type == "repository" and s.name == need.repository:
                granted |= s.actions
        return need.actions <= granted

    async def actions_for(self, principal: Principal, repository: str) -> frozenset[str]:
        """What the principal may do to the repository, wherever it lives."""
        route = await self.proxy.route(repository) if self.proxy is not None else None
        cached_pull: frozenset[str] = frozenset()
        if route is not None:
            # A cached repository: pulls for accounts (and anonymous callers if the upstream
            # allows them); nobody writes to it.
            if not principal.anonymous or route.upstream.config.anonymous:
                cached_pull = repository_actions(principal, repository, "public") & {PULL}
            if route.local == repository:
                return cached_pull
            # Only the mirror answers this name: it is still free for its namespace's owners
            # to create as an ordinary repository.
        visibility = await self.accounts.visibility(repository)
        actions = repository_actions(principal, repository, visibility)
        mirror = self.proxy.mirror if self.proxy is not None else None
        # A local repository this principal may not see is, to them, missing: the mirror
        # answers its name, as it answers every missing one (see `hides`).
        if (
            route is None
            and mirror is not None
            and PULL not in actions
            and (not principal.anonymous or mirror.config.anonymous)
        ):
            actions |= repository_actions(principal, repository, "public") & {PULL}
        return actions | cached_pull

    async def hides(self, principal: Principal, repository: str) -> bool:
        """Whether a local repository that a mirror would otherwise answer must be served
        from the mirror to this principal, who may not see it: a private repository is then
        exactly as absent as a missing one. Decided on the account's own rights, never on a
        token's scope (a token may grant the mirror's pull of that name)."""
        if self.proxy is None or self.proxy.mirror is None or principal.is_admin:
            return False
        if self.proxy.prefixed(repository) is not None:
            return False
        visibility = await self.accounts.visibility(repository)
        if visibility is None:
            return False
        return PULL not in repository_actions(principal, repository, visibility)

    async def may_pull(self, caller: Caller, repositories: list[str]) -> list[str]:
        """Those repositories the caller can see (for the catalog)."""
        principal = caller.principal
        visibilities = await self.accounts.visibilities(repositories)
        visible = []
        for repo in repositories:
            if self.proxy is not None and self.proxy.prefixed(repo) is not None:
                actions = await self.actions_for(principal, repo)
            else:
                actions = repository_actions(principal, repo, visibilities.get(repo))
            if PULL in actions:
                visible.append(repo)
        return visible

    # -- pull rate limit -----------------------------------------------------------------
    def count_pull_now(self, caller: Caller, headers: dict[str, str]) -> bool:
        """`count_pull` when it needs no awaiting (an admin, no limit, a pull from this
        process's lease within the limit: nearly every pull), its headers added to `headers`;
        False when `count_pull` must run."""
        plan = self._plan(caller)
        if plan is None:
            return True
        limit, key, stated = plan
        if not self.pulls.has_lease(key):
            return False
        window = self.settings.pull_limit_window_seconds
        total = self.counters.peek_now(key, window)
        if total is None:
            return False
        count = self.pulls.take(key)
        if count is None:
            return False
        reset = self.pulls.reset_in(key)
        if count > limit:  # raises TOOMANYREQUESTS
            self._pull_headers(limit, window, count, total, reset, key)
        shown = self.pulls.announce(key, max(count, total), self.pulls.window_ends(window))
        headers["RateLimit-Limit"] = stated
        headers["RateLimit-Remaining"] = f"{max(0, limit - shown)};w={window}"
        return True

    def _plan(self, caller: Caller) -> tuple[int, str, str] | None:
        """The caller's limit, counter key and RateLimit-Limit header. Kept by the caller's
        identity for bearer callers, which are remembered with their token, so a pull reuses
        the same object; other callers are made per request and are worked out each time."""
        known = self._limits.get(id(caller))
        if known is not None and known[0] is caller:
            return known[1]
        limited = self._pull_limit(caller)
        plan = None
        if limited is not None:
            plan = (*limited, f"{limited[0]};w={self.settings.pull_limit_window_seconds}")
        if caller.claims is not None:
            self._limits.put(id(caller), (caller, plan))
        return plan

    async def count_pull(self, caller: Caller) -> dict[str, str]:
        """Count one manifest pull; returns the RateLimit headers or raises TOOMANYREQUESTS."""
        plan = self._plan(caller)
        if plan is None:
            return {}
        limit, key, _ = plan
        window = self.settings.pull_limit_window_seconds
        count, reset, total = await self.pulls.hit(key, window, limit)
        if total is None:  # from this process's lease: what every process reserved since
            total, _ = await self.counters.peek(key, window)
        return self._pull_headers(limit, window, count, total, reset, key)

    async def pull_headers(self, caller: Caller) -> dict[str, str]:
        """The RateLimit headers without counting a pull (a HEAD: Docker Hub's documented way
        to check the limit): what the shared counter holds, never more than was announced."""
        plan = self._plan(caller)
        if plan is None:
            return {}
        limit, key, stated = plan
        window = self.settings.pull_limit_window_seconds
        count, _ = await self.counters.peek(key, window)
        shown = self.pulls.announce(key, count, self.pulls.window_ends(window))
        return {
            "RateLimit-Limit": stated,
            "RateLimit-Remaining": f"{max(0, limit - shown)};w={window}",
        }

    def _pull_limit(self, caller: Caller) -> tuple[int, str] | None:
        principal = caller.principal
        if principal.is_admin:
            return None
        if principal.anonymous:
            limit = self.settings.anonymous_pull_limit
            key = f"pull:ip:{client_key(caller.address)}"
        else:
            limit = (
                principal.pull_limit
                if principal.pull_limit is not None
                else self.settings.authenticated_pull_limit
            )
            key = f"pull:user:{principal.name}"
        if limit is None or limit <= 0:
            return None
        return limit, key

    def _pull_headers(
        self, limit: int, window: int, count: int, total: int, reset: float, key: str
    ) -> dict[str, str]:
        """`count` is this pull's number, `total` the shared counter's (all reservations, read
        after the client's previous answer): stating the total keeps Remaining from rising
        when consecutive pulls are answered by different workers or replicas."""
        shown = self.pulls.announce(key, max(count, total), self.pulls.window_ends(window))
        headers = {
            "RateLimit-Limit": f"{limit};w={window}",
            "RateLimit-Remaining": f"{max(0, limit - shown)};w={window}",
        }
        if count > limit:
            raise RegistryError(
                ErrorCode.TOOMANYREQUESTS,
                f"pull rate limit of {limit} per {window}s reached",
                headers={**headers, "Retry-After": str(max(1, int(reset)))},
            )
        return headers
