"""Issue 13, red team on content addressing and isolation: attacks on the fixes, from outside,
against real `dockyard serve` processes. Each test is named after the attack it repeats; it
failed before the fix that follows it, or guards a bypass of an earlier fix."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from dockyard.assembly import open_registry
from dockyard.auth.requests import Caller
from dockyard.auth.setup import build_auth
from dockyard.config import Settings
from tests.auth.helpers import (
    ADMIN_PASSWORD,
    OCI_MANIFEST,
    AuthRegistry,
    basic,
    code_of,
    config_blob,
    manifest_for,
    put_manifest,
    sha256,
    upload_blob,
)
from tests.proxy.helpers import ACCEPT, make_image, proxies_env, pull, upstream
from tests.support.fsck import run_fsck
from tests.support.rewriting_proxy import claiming, rewriting_proxy, unchanged
from tests.support.server import RunningRegistry, free_port

ADMIN = httpx.BasicAuth("admin", ADMIN_PASSWORD)
ALICE, BOB = ("alice", "alice-Pa55"), ("bob", "bob-Pa55")
QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
}


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """Accounts on (two workers): alice and bob, each owning their namespace."""
    tmp = tmp_path_factory.mktemp("redteam")
    server = RunningRegistry(
        data_dir=tmp / "data",
        port=free_port(),
        args=("--auth",),
        env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        log_dir=tmp,
    ).start()
    reg = AuthRegistry(server)
    reg.add_user(*ALICE)
    reg.add_user(*BOB)
    yield reg
    server.stop()
    assert "Traceback" not in server.log()


def _image(http: httpx.Client, repo: str, auth: str) -> bytes:
    """A config blob pushed to `repo`; the manifest naming it (not pushed)."""
    config = config_blob() + os.urandom(8).hex().encode()
    assert upload_blob(http, repo, config, auth).status_code == 201
    return manifest_for(config)


# -- names and tags: the grammar is the whole string -------------------------------------------


def test_attack_trailing_newline_in_tag(reg: AuthRegistry) -> None:
    """`$` also matches before a final newline: a tag `v1\\n` was stored (then listed, and
    logged as two lines), and as an extra `?tag=` it ended in a 500 after the manifest was
    stored (the newline went into the OCI-Tag header)."""
    alice = basic(*ALICE)
    with reg.client() as http:
        body = _image(http, "alice/tags", alice)
        for reference, params in (("v1%0A", {}), (sha256(body), {"tag": ["a\n", "b"]})):
            response = http.put(
                f"/v2/alice/tags/manifests/{reference}",
                params=params,
                content=body,
                headers={"Authorization": alice, "Content-Type": OCI_MANIFEST},
            )
            assert response.status_code == 400, response.text
            assert code_of(response) == "MANIFEST_INVALID"
        assert put_manifest(http, "alice/tags", "v1", body, alice).status_code == 201
        listed = http.get("/v2/alice/tags/tags/list", headers={"Authorization": alice})
        assert listed.json()["tags"] == ["v1"]
        # A name of the same shape is no name either (the mount source is a query parameter).
        mount = http.post(
            "/v2/alice/tags/blobs/uploads/",
            params={"mount": sha256(b"x"), "from": "alice/tags\n"},
            headers={"Authorization": alice},
        )
        assert mount.status_code == 400 and code_of(mount) == "NAME_INVALID", mount.text


# -- the pull-through cache: what one upstream sent is not another's to vouch for ---------------


def test_attack_lying_upstream_adopts_what_an_accounts_only_upstream_sent(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """Two upstreams: `priv`, for accounts only, and `pub`, open to anonymous clients, which
    claims (HEAD: right size) a layer only `priv` has. The layer once pulled through `priv` was
    linked into `pub`'s repository on that word alone, and anonymous clients read it."""
    secret = make_image(tmp_path, "accounts-only")
    layer = secret.layers[0]

    claim = claiming(layer, "/library/liar")
    with (
        upstream(tmp_path / "upstream") as up,
        rewriting_proxy(up.dist.url, unchanged, claim) as (host, _),
    ):
        up.push_image("library/secret", "v1", secret)
        cache = start_registry(
            "--auth",
            env={
                "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
                **QUIET,
                **proxies_env(
                    {"name": "priv", "url": up.url, "anonymous": False},
                    {"name": "pub", "url": f"http://{host}", "anonymous": True},
                ),
            },
        )
        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            assert layer.digest in pull(admin, "priv/library/secret", "v1").blobs
        with httpx.Client(base_url=cache.url, timeout=60) as anon:
            assert anon.get(f"/v2/priv/library/secret/blobs/{layer.digest}").status_code == 401
            liar = f"/v2/pub/library/liar/blobs/{layer.digest}"
            anon.head(liar)
            for _ in range(2):
                got = anon.get(liar)
                leaked = got.status_code == 200 and got.content == layer.compressed
                assert not leaked, "the accounts-only layer was served to an anonymous client"


def test_attack_upstream_serves_another_manifest_than_the_digest_it_names(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """Guard: the upstream names digest D for a tag (and answers GET by D) but sends the bytes
    of another image's manifest. Nothing is cached or served under D or the tag, the client
    gets a JSON error, and the honest image is served once the upstream stops lying."""
    honest, other = make_image(tmp_path, "honest"), make_image(tmp_path, "other")
    wanted = honest.manifest_digest
    lying = {"on": True}

    def lie(method: str, path: str) -> httpx.Response | None:
        if lying["on"] and path in (
            "/v2/library/app/manifests/v1",
            f"/v2/library/app/manifests/{wanted}",
        ):
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": wanted}
            return httpx.Response(200, headers=headers, content=other.manifest_bytes)
        return None

    with (
        upstream(tmp_path / "upstream") as up,
        rewriting_proxy(up.dist.url, unchanged, lie) as (host, _),
    ):
        up.push_image("library/app", "v1", honest)
        up.push_image("library/app", "other", other)
        cache = start_registry(
            env=proxies_env({"name": "up", "url": f"http://{host}", "mirror": True})
        )
        with httpx.Client(base_url=cache.url, timeout=60, headers={"Accept": ACCEPT}) as http:
            for name in ("up/library/app", "library/app"):
                for reference in ("v1", wanted):
                    for method in ("GET", "HEAD"):
                        got = http.request(method, f"/v2/{name}/manifests/{reference}")
                        assert got.status_code != 200, (name, reference, method)
                        assert got.status_code < 500 or got.status_code in (502, 503), got.text
                        if method == "GET":
                            assert "errors" in got.json(), got.text
            lying["on"] = False
            # The lie counted as the upstream failing: it is left alone for a few seconds.
            deadline = time.monotonic() + 30
            while http.head("/v2/up/library/app/manifests/v1").status_code != 200:
                assert time.monotonic() < deadline, "the honest upstream is never asked again"
                time.sleep(0.5)
            assert pull(http, "up/library/app", "v1").digest == wanted
            assert pull(http, "library/app", wanted).manifest == honest.manifest_bytes
    report = run_fsck(cache.data_dir)
    assert report.returncode == 0, report.stdout + report.stderr


def test_attack_upstream_names_no_digest_for_a_tag(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """The digest an upstream names for a tag (HEAD) was fetched as given: a path of its
    choosing (`../`, another tag) was requested from it and the client was told its own
    request was bad (400 DIGEST_INVALID). It is the upstream that failed."""
    image = make_image(tmp_path, "named")
    named = {"value": "v2"}

    def rename(method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
        if path == "/v2/library/app/manifests/v1":
            headers = {k: v for k, v in headers.items() if k.lower() != "docker-content-digest"}
            headers["Docker-Content-Digest"] = named["value"]
        return headers

    with upstream(tmp_path / "upstream") as up, rewriting_proxy(up.dist.url, rename) as proxy:
        host, relayed = proxy
        up.push_image("library/app", "v1", image)
        up.push_image("library/app", "v2", image)
        cache = start_registry(env=proxies_env({"name": "up", "url": f"http://{host}"}))
        with httpx.Client(base_url=cache.url, timeout=60, headers={"Accept": ACCEPT}) as http:
            for value in ("v2", "../../other/manifests/v1"):
                named["value"] = value
                relayed.clear()
                got = http.get("/v2/up/library/app/manifests/v1")
                assert got.status_code in (502, 503), (value, got.status_code, got.text)
                assert "errors" in got.json()
                asked = [line for line in relayed if line != "GET /v2/"]
                assert asked == ["HEAD /v2/library/app/manifests/v1"], asked
                time.sleep(5.5)  # the failure backs the upstream off for a few seconds
            named["value"] = image.manifest_digest
            assert pull(http, "up/library/app", "v1").digest == image.manifest_digest


# -- bytes that went away after the lookup -------------------------------------------------------


def test_attack_blob_read_while_its_bytes_are_swept(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """A sweep (`dockyard cache prune`, `fsck --repair`) moves bytes away before it drops their
    records, and puts back those still needed: a GET in between, or after a sweep cut short,
    found the link but not the file and answered a plain-text 500 (a traceback in the log)."""
    server = start_registry()
    data = os.urandom(200_000)
    digest = sha256(data)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        pushed = http.post("/v2/local/app/blobs/uploads/", params={"digest": digest}, content=data)
        assert pushed.status_code == 201, pushed.text
        stored = server.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
        moved = server.data_dir / "trash" / "mid-sweep"
        moved.parent.mkdir(exist_ok=True)
        stored.rename(moved)
        for headers in ({}, {"Range": "bytes=10-99"}):
            got = http.get(f"/v2/local/app/blobs/{digest}", headers=headers)
            assert got.status_code == 404, (got.status_code, got.text)
            assert code_of(got) == "BLOB_UNKNOWN"
        moved.rename(stored)  # put back: served again, whole and in part
        assert http.get(f"/v2/local/app/blobs/{digest}").content == data
        part = http.get(f"/v2/local/app/blobs/{digest}", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == data[10:100]
    assert "Traceback" not in server.log()


def test_attack_line_of_the_clients_making_in_the_access_log(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """A path is logged decoded: `%0A` in it started a line of the client's making, e.g. a
    forged record of a request that never happened."""
    server = start_registry()
    forged = 'INFO dockyard.access 10.9.9.9 "DELETE /v2/victim/app/manifests/v1" 202'
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in (f"/v2/a/b/manifests/v1%0A{forged}", f"/v2/a/b/blobs/x%0D%0A{forged}%1B[2J"):
            assert http.get(path).status_code == 404
    log = server.log()
    assert "10.9.9.9" in log  # the request was logged...
    assert not any(line.startswith("INFO dockyard.access 10.9.9.9") for line in log.splitlines())
    assert "\x1b" not in log  # ...as one line of its own, without terminal escapes


@contextmanager
def overflowing_upstream(digest: str, size: int, sent: int) -> Iterator[str]:
    """A registry that says blob `digest` has `size` bytes (HEAD), then sends `sent` bytes for
    it, framed by closing the connection. Yields its host."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            if self.path.endswith(f"/blobs/{digest}"):
                self.send_response(200)
                self.send_header("Docker-Content-Digest", digest)
                if self.command == "HEAD":
                    self.send_header("Content-Length", str(size))
                self.send_header("Connection", "close")
                self.end_headers()
                with contextlib.suppress(OSError):
                    for _ in range(0, sent, 1 << 20) if self.command == "GET" else ():
                        self.wfile.write(b"\0" * (1 << 20))
                self.close_connection = True
                return
            found = self.path.rstrip("/") == "/v2"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_HEAD = _answer

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_attack_upstream_sends_more_bytes_than_it_announced(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """The download stopped reading once the disk had the announced size and the bytes in memory
    ran `AHEAD` past it, waiting for a writer that had finished: it hung, with every client of
    that blob, for as long as the upstream kept the connection open."""
    digest = sha256(b"announced as 1000 bytes")
    with overflowing_upstream(digest, 1000, 64 << 20) as host:
        cache = start_registry(env=proxies_env({"name": "up", "url": f"http://{host}"}))
        started = time.monotonic()
        with (
            httpx.Client(base_url=cache.url, timeout=20) as http,
            contextlib.suppress(httpx.TransportError),
        ):
            got = http.get(f"/v2/up/library/big/blobs/{digest}")
            assert got.status_code != 200 or len(got.content) < 1000, got.status_code
        assert time.monotonic() - started < 10, "the download hung"
        with httpx.Client(base_url=cache.url, timeout=20) as http:
            assert http.head(f"/v2/up/library/big/blobs/{digest}").status_code == 200
    assert "Traceback" not in cache.log()


# -- uploads: an id is not a key to someone else's upload -----------------------------------------


def test_attack_another_accounts_upload_id(reg: AuthRegistry) -> None:
    """Guard: Bob, who learnt the id of Alice's upload, gets through his own repository what a
    made-up id gets (while Alice streams a chunk into it too: no `Range` telling her progress),
    and cannot reach it through hers; Alice's upload ends with exactly her bytes."""
    alice, bob = basic(*ALICE), basic(*BOB)
    mine = os.urandom(300_000)
    with reg.client() as http:
        start = http.post("/v2/alice/uploads/blobs/uploads/", headers={"Authorization": alice})
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        upload_id = location.rsplit("/", 1)[1]
        first = http.patch(location, content=mine[:1000], headers={"Authorization": alice})
        assert first.status_code == 202, first.text
        made_up = os.urandom(16).hex()

        def attempts(upload: str) -> list[tuple[int, object]]:
            answers = []
            for method, target in (
                ("GET", f"/v2/bob/mine/blobs/uploads/{upload}"),
                ("PATCH", f"/v2/bob/mine/blobs/uploads/{upload}"),
                ("PUT", f"/v2/bob/mine/blobs/uploads/{upload}?digest={sha256(mine[:1000])}"),
                ("DELETE", f"/v2/bob/mine/blobs/uploads/{upload}"),
                ("GET", f"/v2/alice/uploads/blobs/uploads/{upload}"),
                ("PATCH", f"/v2/alice/uploads/blobs/uploads/{upload}"),
                ("DELETE", f"/v2/alice/uploads/blobs/uploads/{upload}"),
            ):
                got = http.request(
                    method,
                    target,
                    content=b"x" if method == "PATCH" else None,
                    headers={"Authorization": bob},
                )
                errors = got.json()["errors"]
                for error in errors:
                    error.pop("detail", None)
                answers.append((got.status_code, errors, "range" in got.headers))
            return answers

        assert attempts(upload_id) == attempts(made_up)

        async def while_streaming() -> tuple[int, ...]:
            async def slow() -> AsyncIterator[bytes]:
                for offset in range(1000, len(mine), 50_000):
                    yield mine[offset : offset + 50_000]
                    await asyncio.sleep(0.2)

            async with httpx.AsyncClient(base_url=reg.url, timeout=60) as client:
                streaming = asyncio.create_task(
                    client.patch(location, content=slow(), headers={"Authorization": alice})
                )
                await asyncio.sleep(0.3)
                probe = await client.patch(
                    f"/v2/bob/mine/blobs/uploads/{upload_id}",
                    content=b"x",
                    headers={"Authorization": bob},
                )
                assert "range" not in probe.headers, probe.headers
                return probe.status_code, (await streaming).status_code

        assert asyncio.run(while_streaming()) == (404, 202)
        done = http.put(location, params={"digest": sha256(mine)}, headers={"Authorization": alice})
        assert done.status_code == 201, done.text
        pulled = http.get(
            f"/v2/alice/uploads/blobs/{sha256(mine)}", headers={"Authorization": alice}
        )
        assert pulled.content == mine


# -- fsck --repair racing pushes of the very content it quarantines -----------------------------


def test_attack_fsck_repair_racing_pushes_of_the_same_content(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """Guard: while `fsck --repair` moves a corrupt blob away, pushes of its real content (a
    fresh repository each, both workers) keep landing. Once it is done, every repository answers
    the right bytes or BLOB_UNKNOWN, never the corrupt ones, and the next push heals it."""
    server = start_registry()
    good = os.urandom(4 << 20)
    digest = sha256(good)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        first = http.post("/v2/race/r0/blobs/uploads/", params={"digest": digest}, content=good)
        assert first.status_code == 201, first.text
        stored = server.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
        stored.write_bytes(os.urandom(len(good)))  # the disk went bad under it

        repair = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockyard",
                "fsck",
                "--repair",
                "--data-dir",
                str(server.data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        repos = ["race/r0"]
        while repair.poll() is None or len(repos) < 4:
            repo = f"race/r{len(repos)}"
            pushed = http.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=good
            )
            assert pushed.status_code == 201, pushed.text
            repos.append(repo)
        out = repair.communicate(timeout=120)[0]
        assert f"quarantined\t{digest}" in out, out
        served = {}
        for repo in repos:
            got = http.get(f"/v2/{repo}/blobs/{digest}")
            served[repo] = got.status_code
            assert got.status_code in (200, 404), (repo, got.status_code)
            if got.status_code == 200:
                assert got.content == good, f"{repo} serves the corrupt bytes"
        # Pushes that found the corrupt copy lost their link with it; later ones stored afresh.
        assert served["race/r0"] == 404, served
        healed = http.post("/v2/race/last/blobs/uploads/", params={"digest": digest}, content=good)
        assert healed.status_code == 201
        assert http.get(f"/v2/race/last/blobs/{digest}").content == good
    report = run_fsck(server.data_dir)
    assert "0 bad blobs" in report.stdout, report.stdout


# -- a mount's source: what it holds costs nothing to those who may not read it -----------------


def test_attack_mount_from_a_private_repository_probes_its_content(tmp_path: Path) -> None:
    """`?mount=D&from=alice/secret` looked whether alice/secret holds D before asking whether
    Bob may read it: one lookup more when it does, a timing oracle on a private repository's
    content. Now a private source holding D, one without it and a missing one cost the same
    lookups, and all refuse."""
    result = asyncio.run(_mount_probes(Settings(data_dir=tmp_path / "data", auth=True)))
    lookups = {name: calls for name, (calls, _) in result.items()}
    answers = {name: mounted for name, (_, mounted) in result.items()}
    assert lookups["private-holding"] == lookups["private-without"] == lookups["missing"], lookups
    assert answers == {"private-holding": False, "private-without": False, "missing": False}


def _spy(store: object, label: str, calls: list[str]) -> None:
    """Record every lookup made through `store`'s public coroutine methods."""
    for name in dir(type(store)):
        method = getattr(store, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            continue

        async def recorded(*args: object, _method=method, _name=name, **kwargs: object) -> object:
            calls.append(f"{label}.{_name}")
            return await _method(*args, **kwargs)

        setattr(store, name, recorded)


async def _mount_probes(settings: Settings) -> dict[str, tuple[list[str], bool]]:
    async with open_registry(settings, create=True) as registry:
        gate = (await build_auth(registry)).gate
        accounts = registry.accounts
        await accounts.create_user("alice", ALICE[1])
        await accounts.create_user("bob", BOB[1])
        secret = sha256(b"alice's layer")
        await registry.meta.link_blob("alice/secret", secret, 13)
        await registry.meta.link_blob("alice/other", sha256(b"something else"), 14)
        principal = await accounts.authenticate(*BOB)
        assert principal is not None
        caller = Caller(principal, None, "127.0.0.1")

        async def may_read(name: str) -> bool:  # as the HTTP layer's read check, for Basic
            return bool(await gate.may_pull(caller, [name]))

        calls: list[str] = []
        _spy(registry.meta, "meta", calls)
        _spy(accounts.store, "accounts", calls)
        sources = {
            "private-holding": "alice/secret",
            "private-without": "alice/other",
            "missing": "alice/absent",
        }
        result = {}
        for name, source in sources.items():
            calls.clear()
            mounted = await registry.blobs.mount("bob/mine", secret, source, may_read)
            result[name] = (list(calls), mounted)
        return result


def test_attack_download_cut_mid_stream_logs_a_traceback(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """An upstream that hangs up mid-blob, once the client has its first bytes, is answered as
    designed (the body cut short), but the failure reached the log as an unexpected error with
    a traceback: Starlette wraps it, after the response started, in a RuntimeError."""
    digest = sha256(b"announced as 4 MiB")
    with overflowing_upstream(digest, 4 << 20, 1 << 20) as host:
        cache = start_registry(env=proxies_env({"name": "up", "url": f"http://{host}"}))
        with httpx.Client(base_url=cache.url, timeout=20) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                http.get(f"/v2/up/library/cut/blobs/{digest}")
            assert http.get("/v2/").status_code == 200
    log = cache.log()
    assert "cut short" in log
    assert "Traceback" not in log and "unexpected error" not in log
