"""A small real token service for registry Bearer auth (Docker's token protocol), for tests.

It signs ES256 JWTs with a fresh P-256 key and hands Distribution a self-signed certificate of
that key as `rootcertbundle`; the JWT header's `kid` is the libtrust key id Distribution looks
keys up by (base32 of the first 30 bytes of sha256(public key DER), groups of 4 joined by ':').

Endpoints (`/token`):
* GET with optional Basic credentials and `service`, repeated `scope`, `offline_token=true`;
* POST form `grant_type=password` (username, password) or `grant_type=refresh_token`.
Every request is recorded in `requests` so tests can see which grant and scopes were used.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.support.server import free_port


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenServer:
    """`users` may log in; `read_only` of them get only `pull`; anonymous gets `pull` when
    `anonymous_pull`. `token_key` picks the response field(s): "both", "token", "access_token".
    `refuse_get` makes GET answer 404 (services that only speak the OAuth2 POST)."""

    root: Path
    users: dict[str, str] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)
    anonymous_pull: bool = True
    expires_in: int = 300
    token_key: str = "both"
    refuse_get: bool = False
    service: str = "dockyard-test-registry"
    issuer: str = "dockyard-test-issuer"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _refresh: dict[str, str] = field(default_factory=dict)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def cert_path(self) -> Path:
        return self.root / "token-cert.pem"

    def distribution_auth(self) -> dict[str, Any]:
        """The `auth:` section of a Distribution config that trusts this service."""
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert_path),
            }
        }

    def start(self) -> TokenServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = libtrust_key_id(self._key.public_key())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test token")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.port = self.port or free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        if url.path != "/token":
            return self._reply(handler, 404, {"error": "not found"})
        query = parse_qs(url.query)
        record: dict[str, Any] = {"method": method, "user": None}
        if method == "GET":
            if self.refuse_get:
                return self._reply(handler, 404, {"error": "use POST"})
            scopes = query.get("scope", [])
            user = self._basic_user(handler)
            if user is False:
                record.update(scopes=scopes, rejected=True)
                self.requests.append(record)
                return self._reply(handler, 401, {"details": "incorrect username or password"})
            offline = query.get("offline_token", ["false"])[0] == "true"
            record.update(
                grant="basic" if user else "anonymous",
                scopes=scopes,
                service=query.get("service", [None])[0],
                account=query.get("account", [None])[0],
            )
        else:
            length = int(handler.headers.get("Content-Length") or 0)
            form = parse_qs(handler.rfile.read(length).decode())
            grant = form.get("grant_type", [""])[0]
            scopes = " ".join(form.get("scope", [])).split()
            record.update(grant=grant, scopes=scopes, service=form.get("service", [None])[0])
            if grant == "password":
                name = form.get("username", [""])[0]
                user = name if self.users.get(name) == form.get("password", [None])[0] else False
                offline = form.get("access_type", [""])[0] == "offline"
            elif grant == "refresh_token":
                user = self._refresh.get(form.get("refresh_token", [""])[0], False)
                offline = True
            else:
                return self._reply(handler, 400, {"error": "unsupported_grant_type"})
            if user is False:
                record["rejected"] = True
                self.requests.append(record)
                return self._reply(handler, 401, {"error": "invalid_grant"})
        record["user"] = user
        self.requests.append(record)
        if user is None and not self.anonymous_pull:
            return self._reply(handler, 401, {"details": "authentication required"})
        access = [self._grant(user, scope) for scope in scopes]
        token = self._sign(user or "", [a for a in access if a["actions"]])
        body: dict[str, Any] = {
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        if self.token_key in ("both", "token"):
            body["token"] = token
        if self.token_key in ("both", "access_token"):
            body["access_token"] = token
        if offline and user:
            refresh = uuid.uuid4().hex
            self._refresh[refresh] = user
            body["refresh_token"] = refresh
        return self._reply(handler, 200, body)

    def _basic_user(self, handler: BaseHTTPRequestHandler) -> str | bool | None:
        header = handler.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return name if name in self.users and self.users[name] == password else False

    def _grant(self, user: str | None, scope: str) -> dict[str, Any]:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        wanted = [a for a in actions.split(",") if a]
        if user is None or user in self.read_only:
            allowed = {"pull"}
        else:
            allowed = {"pull", "push", "delete", "*"}
        return {"type": kind, "name": name, "actions": [a for a in wanted if a in allowed]}

    def _sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def issued(self) -> list[dict[str, Any]]:
        """Requests that got a token."""
        return [r for r in self.requests if not r.get("rejected")]
