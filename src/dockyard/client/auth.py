"""Answering a registry's `WWW-Authenticate` challenges, as an httpx auth flow.

The flow remembers the host's challenge, so after the first 401 every request goes out already
authorized: Basic with the stored password, or a Bearer token from the realm's token service
for exactly the scopes that request needs (derived from its URL: `repository:NAME:pull`,
`pull,push` for writes, the source repository too for a cross-repository mount). Tokens are
cached per (realm, service, scopes) until shortly before `expires_in`. A 401/403 that says
`insufficient_scope` gets one retry with the scopes the registry names.

Token services are asked as docker asks them: GET with Basic credentials and `service` +
`scope` parameters, or the OAuth2 POST (`grant_type=refresh_token`) when an identity token is
configured, falling back to `grant_type=password` when the service refuses the GET.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncGenerator, Generator, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

from dockyard.client.credentials import Credentials
from dockyard.client.errors import ClientError, Unauthorized

SCOPES_EXTENSION = "dockyard.scopes"  # request.extensions key overriding the derived scopes
CLIENT_ID = "dockyard"
_EXPIRY_MARGIN = 5.0
_DEFAULT_EXPIRES_IN = 60
_READS = frozenset({"GET", "HEAD"})
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags|referrers)(?:/|$)")
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> set[str]:
        return set(self.params.get("scope", "").split())

    @property
    def insufficient_scope(self) -> bool:
        return self.params.get("error") == "insufficient_scope"


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse `WWW-Authenticate` header values (several challenges may share one value)."""
    found: list[Challenge] = []
    for value in values:
        text = value.strip()
        while text:
            match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)", text)
            if not match:
                break
            scheme, text = match.group(1).lower(), text[match.end() :]
            params: dict[str, str] = {}
            while text:
                param = _PARAM.match(text)
                if not param:
                    break
                quoted, bare = param.group(2), param.group(3)
                params[param.group(1).lower()] = (
                    re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                )
                text = text[param.end() :]
            found.append(Challenge(scheme, params))
            text = text.lstrip(", ")
    return found


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """`repository:a:pull` + `repository:a:push` -> `repository:a:pull,push`; sorted, stable."""
    actions: dict[str, set[str]] = {}
    for scope in scopes:
        resource, _, acts = scope.rpartition(":")
        if not resource:
            continue
        actions.setdefault(resource, set()).update(a for a in acts.split(",") if a)
    return tuple(f"{res}:{','.join(sorted(acts))}" for res, acts in sorted(actions.items()))


def _actions(scopes: Iterable[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for scope in scopes:
        resource, _, acts = scope.rpartition(":")
        found.setdefault(resource, set()).update(acts.split(","))
    return found


def scopes_for(request: httpx.Request) -> tuple[str, ...]:
    """The scopes a registry request needs, read from its method and URL."""
    given = request.extensions.get(SCOPES_EXTENSION)
    if given is not None:
        return merge_scopes(given)
    path = request.url.path
    if path.startswith("/v2/_catalog"):
        return ("registry:catalog:*",)
    match = _REPO_PATH.match(path)
    if not match:
        return ()
    name = match.group("name")
    if request.method in _READS:
        wanted = [f"repository:{name}:pull"]
    elif request.method == "DELETE" and "/blobs/uploads/" not in path:
        wanted = [f"repository:{name}:delete"]
    else:
        wanted = [f"repository:{name}:pull,push"]
    source = request.url.params.get("from")
    if source and request.url.params.get("mount"):
        wanted.append(f"repository:{source}:pull")
    return merge_scopes(wanted)


def _basic(creds: Credentials) -> str:
    raw = f"{creds.username or ''}:{creds.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class RegistryAuth(httpx.Auth):
    """Auth for one registry host. `offline_token` asks token services for a refresh token
    (kept in `refresh_token`), which `dockyard login` stores instead of the password."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        offline_token: bool = False,
        plain_http_ok: bool = False,
        api_host: str | None = None,
    ) -> None:
        self.host = host
        self.api_host = api_host or host
        self.credentials = credentials if credentials and not credentials.empty else None
        self.offline_token = offline_token
        self.plain_http_ok = plain_http_ok
        self.challenge: Challenge | None = None
        self.refresh_token: str | None = None
        self.tokens_fetched = 0
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._use_password_grant = False

    # -- httpx entry points ---------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("RegistryAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        scopes = scopes_for(request)
        if self.challenge is not None:
            step = self._authorize(request, self.challenge, scopes)
            while step is not None:
                answer = yield step
                await answer.aread()
                step = self._on_token(answer, step, request, self.challenge, scopes)
        response = yield request
        retried_fresh = retried_scope = False
        while response.status_code in (401, 403):
            if not _same_origin(response.url, request.url):
                # A redirect led elsewhere (an object store, a CDN): its challenge is not the
                # registry's, and answering it would hand the credentials to another host.
                return
            challenge = self._pick(response)
            if challenge is None or not _replayable(request):
                return
            if challenge.insufficient_scope:
                if retried_scope:
                    return
                retried_scope = True
                scopes = merge_scopes([*scopes, *challenge.scopes])
            elif response.status_code == 403 or retried_fresh:
                return
            else:
                retried_fresh = True
                if challenge.scheme == "basic" and (
                    self.credentials is None or "Authorization" in request.headers
                ):
                    self.challenge = challenge
                    return  # no credentials, or the ones sent were refused
                scopes = merge_scopes([*scopes, *challenge.scopes])
            self.challenge = challenge
            await response.aread()
            request.headers.pop("Authorization", None)
            self._forget(challenge, scopes)
            step = self._authorize(request, challenge, scopes)
            while step is not None:
                answer = yield step
                await answer.aread()
                step = self._on_token(answer, step, request, challenge, scopes)
            if "Authorization" not in request.headers:
                return
            response = yield request

    # -- helpers --------------------------------------------------------------------------

    def _pick(self, response: httpx.Response) -> Challenge | None:
        for challenge in parse_challenges(response.headers.get_list("WWW-Authenticate")):
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                return challenge
            if challenge.scheme == "basic":
                return challenge
        return None

    def _key(
        self, challenge: Challenge, scopes: tuple[str, ...]
    ) -> tuple[str, str, tuple[str, ...]]:
        return challenge.params["realm"], challenge.params.get("service", ""), scopes

    def _cached(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token | None:
        """A live token for these scopes, or for a superset of them (push covers pull)."""
        now = time.monotonic()
        realm, service, _ = self._key(challenge, scopes)
        need = _actions(scopes)
        for (t_realm, t_service, t_scopes), token in self._tokens.items():
            if (t_realm, t_service) != (realm, service) or token.expires_at <= now:
                continue
            have = _actions(t_scopes)
            if all(acts <= have.get(res, set()) for res, acts in need.items()):
                return token
        return None

    def _forget(self, challenge: Challenge, scopes: tuple[str, ...]) -> None:
        """Drop every cached token that claimed to cover `scopes`: the registry disagreed."""
        if challenge.scheme != "bearer":
            return
        while (token := self._cached(challenge, scopes)) is not None:
            for key in [k for k, v in self._tokens.items() if v is token]:
                del self._tokens[key]

    def _authorize(
        self, request: httpx.Request, challenge: Challenge, scopes: tuple[str, ...]
    ) -> httpx.Request | None:
        """Set the Authorization header, or return the token request to send first."""
        if challenge.scheme == "basic":
            if self.credentials is not None:
                request.headers["Authorization"] = _basic(self.credentials)
            return None
        token = self._cached(challenge, scopes)
        if token is None:
            return self._token_request(challenge, scopes)
        request.headers["Authorization"] = f"Bearer {token.value}"
        return None

    def _on_token(
        self,
        response: httpx.Response,
        sent: httpx.Request,
        request: httpx.Request,
        challenge: Challenge,
        scopes: tuple[str, ...],
    ) -> httpx.Request | None:
        """Take the token service's answer; return a second request if it must be asked again."""
        if (
            response.status_code in (404, 405)
            and sent.method == "GET"
            and self.credentials
            and self.credentials.password
        ):
            self._use_password_grant = True
            return self._token_request(challenge, scopes)
        token = self._accept(response, challenge)
        self._tokens[self._key(challenge, scopes)] = token
        request.headers["Authorization"] = f"Bearer {token.value}"
        return None

    def _token_request(self, challenge: Challenge, scopes: tuple[str, ...]) -> httpx.Request:
        realm = challenge.params["realm"]
        url = httpx.URL(realm)
        creds = self.credentials
        if creds and not self._may_receive_credentials(url):
            raise ClientError(
                f"{self.host}: refusing to send credentials to the token service "
                f"{realm} over plain HTTP: without TLS they go only to the "
                "registry's own host, and only when it is marked insecure"
            )
        service = challenge.params.get("service")
        if creds and (creds.identity_token or self._use_password_grant):
            form = {"client_id": CLIENT_ID}
            if creds.identity_token:
                form.update(grant_type="refresh_token", refresh_token=creds.identity_token)
            else:
                form.update(
                    grant_type="password",
                    username=creds.username or "",
                    password=creds.password or "",
                )
                if self.offline_token:
                    form["access_type"] = "offline"
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            return httpx.Request("POST", url, data=form)
        params = [("service", service)] if service else []
        params += [("scope", scope) for scope in scopes]
        headers = {}
        if creds:
            if creds.username:
                params.append(("account", creds.username))
            headers["Authorization"] = _basic(creds)
            if self.offline_token:
                params += [("offline_token", "true"), ("client_id", CLIENT_ID)]
        return httpx.Request("GET", url.copy_merge_params(tuple(params)), headers=headers)

    def _may_receive_credentials(self, realm: httpx.URL) -> bool:
        """A token service anywhere gets the credentials over HTTPS (Docker Hub's realm is on
        another host); over plain HTTP only the plain-HTTP registry's own host does, which
        sees them anyway: a challenge must not send them in the clear to a host it names."""
        if realm.scheme == "https":
            return True
        return (
            self.plain_http_ok
            and realm.scheme == "http"
            and realm.host.lower() == httpx.URL(f"http://{self.api_host}").host.lower()
        )

    def _accept(self, response: httpx.Response, challenge: Challenge) -> _Token:
        realm = challenge.params["realm"]
        if response.status_code in (401, 403):
            if self.credentials is None:
                raise Unauthorized(
                    f"{self.host} requires authentication; run `dockyard login {self.host}`",
                    "UNAUTHORIZED",
                )
            who = self.credentials.username or "the stored identity token"
            raise Unauthorized(
                f"{self.host}: the token service {realm} rejected the "
                f"credentials of {who}; run `dockyard login {self.host}`",
                "UNAUTHORIZED",
            )
        if response.status_code != 200:
            raise ClientError(
                f"{self.host}: the token service {realm} answered "
                f"{response.status_code}; try again later"
            )
        data = _token_json(response)
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value:
            raise ClientError(f"{self.host}: the token service {realm} sent no token")
        if isinstance(data.get("refresh_token"), str):
            self.refresh_token = data["refresh_token"]
        try:
            expires_in = float(data.get("expires_in") or _DEFAULT_EXPIRES_IN)
        except (TypeError, ValueError):
            expires_in = _DEFAULT_EXPIRES_IN
        self.tokens_fetched += 1
        return _Token(value, time.monotonic() + expires_in - _EXPIRY_MARGIN)


def _token_json(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        # Some old services answer form-encoded; accept that too.
        data = {k: v[0] for k, v in parse_qs(response.text).items()}
    return data if isinstance(data, dict) else {}


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _same_origin(one: httpx.URL, other: httpx.URL) -> bool:
    return (one.scheme, one.host, one.port) == (other.scheme, other.host, other.port)
