"""Issue 14, "Messages and exit codes" and "Rate-limit headers": what the CLI and the server
say to a new user, checked against real servers (Dockyard, CNCF Distribution) and the real
`dockyard` command."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.auth.pull_counting import PullCounter, _Lease
from dockyard.client.credentials import Credentials, CredentialStore
from tests.auth.conftest import QUIET
from tests.auth.helpers import (
    ADMIN_PASSWORD,
    OCI_MANIFEST,
    WINDOW,
    AuthRegistry,
    basic,
    code_of,
    errors_of,
    get_manifest,
    push_image,
)
from tests.proxy.helpers import error_of, make_image, pull, start_cache, upstream
from tests.support.images import read_layout_index, write_oci_image
from tests.support.peers import Distribution, require
from tests.support.push import unique_repo
from tests.support.server import RunningRegistry, free_port

CAROL_PASSWORD = "carol-long-password"
RITA_PASSWORD = "rita-long-password"
RITA_LIMIT = 40


def dockyard(
    *args: str,
    home: Path,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m dockyard ARGS` with a private docker config; never raises on failure."""
    full = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home), **(env or {})}
    if "REGISTRY_AUTH_FILE" not in (env or {}):
        full.pop("REGISTRY_AUTH_FILE", None)
    full.pop("XDG_RUNTIME_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=full,
        input=input,
        timeout=300,
        cwd=cwd,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result


def pushed(registry: RunningRegistry, tmp_path: Path, tag: str = "v1") -> tuple[str, str]:
    """A fresh image pushed with `dockyard push`: (repository reference, manifest digest)."""
    image = write_oci_image(tmp_path / "src", tag, seed=unique_repo("seed"))
    repo = f"{registry.host}/{unique_repo('msg')}"
    ok(dockyard("push", "--quiet", f"oci:{tmp_path / 'src'}:{tag}", f"{repo}:{tag}", home=tmp_path))
    return repo, image.manifest_digest


# -- pull and push summaries ----------------------------------------------------------------


def test_pull_summary_speaks_of_blobs_received_and_prints_name_at_digest(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo, digest = pushed(registry, tmp_path)
    again = ok(dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{repo}:v2", home=tmp_path))
    assert f"{repo}@{digest}" in again.stdout, again.stdout
    pulled = ok(dockyard("pull", f"{repo}:v1", f"oci:{tmp_path / 'out'}:v1", home=tmp_path))
    assert "received" in pulled.stdout and "sent" not in pulled.stdout, pulled.stdout
    assert f"{repo}@{digest}" in pulled.stdout, pulled.stdout
    tagged = ok(dockyard("tag", f"{repo}:v1", f"{repo}:v3", home=tmp_path))
    assert tagged.stdout.strip() == f"{repo}:v3: {repo}@{digest}"
    deleted = ok(dockyard("delete", f"{repo}:v3", home=tmp_path))
    assert deleted.stdout.strip() == f"deleted {repo}@{digest}"


def test_pull_by_digest_does_not_label_the_layout_latest(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo, digest = pushed(registry, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    pulled = ok(dockyard("pull", f"{repo}@{digest}", home=tmp_path, cwd=work))
    name = repo.rsplit("/", 1)[-1]
    assert ":latest" not in pulled.stdout, pulled.stdout
    entries = read_layout_index(work / name)["manifests"]
    assert [e["digest"] for e in entries] == [digest]
    assert "org.opencontainers.image.ref.name" not in entries[0].get("annotations", {})
    # By tag, the layout carries the tag (the untagged entry of the same digest absorbed).
    ok(dockyard("pull", f"{repo}:v1", home=tmp_path, cwd=work))
    tags = [
        e.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for e in read_layout_index(work / name)["manifests"]
    ]
    assert tags == ["v1"]


# -- docker:// and --insecure everywhere ----------------------------------------------------


def test_docker_transport_is_accepted_by_every_command_taking_a_reference(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo, digest = pushed(registry, tmp_path)
    parsed = json.loads(ok(dockyard("ref", "parse", f"docker://{repo}:v1", home=tmp_path)).stdout)
    assert parsed["registry"] == registry.host and parsed["tag"] == "v1"
    assert (
        json.loads(ok(dockyard("ref", "parse", "docker://alpine", home=tmp_path)).stdout)[
            "canonical"
        ]
        == "docker.io/library/alpine:latest"
    )
    listed = ok(dockyard("catalog", f"docker://{registry.host}", home=tmp_path)).stdout
    assert repo.split("/", 1)[1] in listed.splitlines()
    assert ok(dockyard("tags", f"docker://{repo}", home=tmp_path)).stdout.split() == ["v1"]
    shown = json.loads(ok(dockyard("inspect", f"docker://{repo}:v1", home=tmp_path)).stdout)
    assert shown["digest"] == digest
    ok(dockyard("tag", f"docker://{repo}:v1", f"docker://{repo}:v2", home=tmp_path))
    ok(dockyard("delete", "--tag-only", f"docker://{repo}:v2", home=tmp_path))
    assert ok(dockyard("tags", f"docker://{repo}", home=tmp_path)).stdout.split() == ["v1"]


def test_insecure_is_one_flag_meaning_plain_http_to_the_named_registries(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    # The machine's own name reaches the server but is not a loopback name: HTTPS by default.
    name = socket.gethostname()
    assert socket.gethostbyname(name) == "127.0.0.1", "the host name must resolve to 127.0.0.1"
    repo, _ = pushed(registry, tmp_path)
    named = repo.replace("127.0.0.1", name, 1)
    assert dockyard("tags", named, home=tmp_path).returncode != 0
    for args in (
        ["tags", named],
        ["catalog", named.split("/", 1)[0]],
        ["inspect", f"{named}:v1"],
        ["pull", f"{named}:v1", f"oci:{tmp_path / 'o'}"],
    ):
        ok(dockyard(*args, "--insecure", home=tmp_path))
    ok(dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{named}:v9", "--insecure", home=tmp_path))
    ok(dockyard("copy", f"{named}:v9", f"{named}:v10", "--insecure", home=tmp_path))
    for command in ("login", "push", "pull", "copy", "tag", "inspect", "tags", "delete", "catalog"):
        text = " ".join(ok(dockyard(command, "--help", home=tmp_path)).stdout.split())
        assert "--insecure" in text and "use plain HTTP" in text, (command, text)


# -- accounts: denials by scope, login --------------------------------------------------------


@pytest.fixture(scope="module")
def auth_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """`dockyard serve --auth` with carol (owner of carol/…) and her read-only token `ci`."""
    base = tmp_path_factory.mktemp("auth-messages")
    server = RunningRegistry(
        data_dir=base / "data",
        port=free_port(),
        args=("--auth",),
        env={
            **QUIET,
            "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": str(WINDOW),
        },
        log_dir=base,
    ).start()
    reg = AuthRegistry(server)
    reg.add_user("carol", CAROL_PASSWORD)
    reg.add_user("rita", RITA_PASSWORD)
    reg.admin("user", "pull-limit", "rita", str(RITA_LIMIT))
    try:
        yield reg
    finally:
        server.stop()


def test_wrong_password_at_login_says_the_credentials_were_rejected(
    auth_reg: AuthRegistry, tmp_path: Path
) -> None:
    result = dockyard(
        "login",
        auth_reg.host,
        "-u",
        "carol",
        "--password-stdin",
        input="not-her-password\n",
        home=tmp_path,
    )
    assert result.returncode == 4, result
    assert "rejected the credentials" in result.stderr, result.stderr
    assert "dockyard login" not in result.stderr, result.stderr
    assert not (tmp_path / "docker" / "config.json").exists()


def test_a_denial_by_the_token_scope_names_the_token_its_scope_and_the_scope_needed(
    auth_reg: AuthRegistry, tmp_path: Path
) -> None:
    secret = auth_reg.create_token("carol", "ci", "read")
    wanted = "the token `ci` has scope `read`; pushing needs `write`"
    # Basic credentials with the token as the password.
    with auth_reg.client() as http:
        refused = http.post(
            "/v2/carol/app/blobs/uploads/", headers={"Authorization": basic("carol", secret)}
        )
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        assert errors_of(refused)[0]["message"] == wanted
        # A bearer token obtained with it: the same answer.
        bearer = auth_reg.bearer("repository:carol/app:pull,push", basic("carol", secret))
        refused = http.post("/v2/carol/app/blobs/uploads/", headers={"Authorization": bearer})
        assert refused.status_code == 403 and errors_of(refused)[0]["message"] == wanted
        # Her password may push: no token is blamed where the account is the limit.
        other = http.post(
            "/v2/dave/app/blobs/uploads/", headers={"Authorization": basic("carol", secret)}
        )
        assert wanted not in other.text
    # The client prints it (logged in as `docker://HOST`, which login takes too).
    ok(
        dockyard(
            "login",
            f"docker://{auth_reg.host}",
            "-u",
            "carol",
            "--password-stdin",
            input=secret + "\n",
            home=tmp_path,
        )
    )
    write_oci_image(tmp_path / "src", "v1", seed="scope")
    pushed = dockyard(
        "push", f"oci:{tmp_path / 'src'}:v1", f"{auth_reg.host}/carol/app:v1", home=tmp_path
    )
    assert pushed.returncode == 4, pushed
    assert wanted in pushed.stderr, pushed.stderr


# -- credentials files ----------------------------------------------------------------------


def test_registry_auth_file_when_set_is_the_only_containers_auth_file_read(tmp_path: Path) -> None:
    def auth_file(path: Path, user: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(f"{user}:pw".encode()).decode()
        path.write_text(json.dumps({"auths": {"quay.io": {"auth": encoded}}}))
        return path

    runtime = tmp_path / "run"
    auth_file(runtime / "containers" / "auth.json", "kim")
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"auths": {}}))
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "XDG_RUNTIME_DIR": str(runtime)}
    assert CredentialStore(env=env).get("quay.io") == Credentials("kim", "pw")
    store = CredentialStore(env={**env, "REGISTRY_AUTH_FILE": str(chosen)})
    assert store.get("quay.io") is None
    auth_file(chosen, "ivy")
    assert store.get("quay.io") == Credentials("ivy", "pw")


# -- rate-limit headers ---------------------------------------------------------------------


def remaining(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    assert response.headers["RateLimit-Limit"] == f"{RITA_LIMIT};w={WINDOW}"
    value, _, window = response.headers["RateLimit-Remaining"].partition(";")
    assert window == f"w={WINDOW}"
    return int(value)


def test_head_carries_the_rate_limit_headers_and_remaining_never_goes_up(
    auth_reg: AuthRegistry,
) -> None:
    rita = basic("rita", RITA_PASSWORD)
    with auth_reg.client() as http:
        push_image(http, "rita/app", "v1", rita)
        # HEAD first: the whole limit left, and HEAD spends none of it.
        assert remaining(get_manifest(http, "rita/app", "v1", rita, "HEAD")) == RITA_LIMIT
        assert remaining(get_manifest(http, "rita/app", "v1", rita, "HEAD")) == RITA_LIMIT
        seen = []
        for _ in range(RITA_LIMIT // 2):
            seen.append(remaining(get_manifest(http, "rita/app", "v1", rita)))
            seen.append(remaining(get_manifest(http, "rita/app", "v1", rita, "HEAD")))
        assert all(later <= earlier for earlier, later in itertools.pairwise(seen)), seen
        assert seen[0] == RITA_LIMIT - 1 and seen[-1] < RITA_LIMIT // 2 + 1, seen

    # Pulls in parallel, from one client, each answer after the last: never up either.
    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=auth_reg.url, timeout=30.0) as client:

            async def one(method: str) -> httpx.Response:
                return await client.request(
                    method,
                    "/v2/rita/app/manifests/v1",
                    headers={"Authorization": rita, "Accept": OCI_MANIFEST},
                )

            answers = await asyncio.gather(*(one("GET" if i % 3 else "HEAD") for i in range(24)))
        return [
            int(a.headers["RateLimit-Remaining"].split(";")[0])
            for a in answers
            if a.status_code == 200
        ]

    values = asyncio.run(burst())
    assert values and min(values) >= 0
    with auth_reg.client() as http:
        final = get_manifest(http, "rita/app", "v1", rita, "HEAD")
        assert remaining(final) <= min(values)


def test_concurrent_leases_finishing_out_of_order_never_hand_out_lower_numbers() -> None:
    """Two pulls reserve at once and the first reservation answers last: the later lease's
    numbers go on, the earlier (lower) ones are not handed out after them."""

    class OutOfOrder:
        def __init__(self) -> None:
            self.count = 0
            self.second_done = asyncio.Event()

        async def hit(self, key: str, window_seconds: int, amount: int = 1) -> tuple[int, float]:
            self.count += amount
            count = self.count
            if count == amount:  # the first reservation: answer after the second
                await self.second_done.wait()
            else:
                self.second_done.set()
            return count, 60.0

    async def run() -> list[int]:
        pulls = PullCounter(OutOfOrder())
        pulls._leases["k"] = _Lease(  # a busy key: the next reservations are several pulls
            int(time.time() // 21600) * 21600,
            PullCounter.window_ends(21600),
            0,
            0,
            64,
            time.time() - 0.01,
        )
        first, second = await asyncio.gather(
            pulls.hit("k", 21600, 10_000), pulls.hit("k", 21600, 10_000)
        )
        shown = [
            pulls.announce("k", n, PullCounter.window_ends(21600)) for n in (second[0], first[0])
        ]
        return [*shown, *(pulls.take("k") or 0 for _ in range(3))]

    numbers = asyncio.run(run())
    assert all(later > earlier for earlier, later in itertools.pairwise(numbers[1:])), numbers
    assert numbers[2] > numbers[0], numbers


def test_remaining_never_goes_up_across_workers_on_new_connections(
    auth_reg: AuthRegistry,
) -> None:
    """A busy client whose pulls each open a new connection, so both workers of the default
    `serve` answer them in turn, each from a lease of its own: Remaining only goes down."""
    auth_reg.add_user("rush", "rush-long-password")
    auth_reg.admin("user", "pull-limit", "rush", "5000")
    rush = basic("rush", "rush-long-password")
    with auth_reg.client() as http:
        push_image(http, "rush/app", "v1", rush)
    stated = []
    for _ in range(300):
        with httpx.Client(base_url=auth_reg.url, timeout=30.0) as fresh:
            response = fresh.get(
                "/v2/rush/app/manifests/v1",
                headers={"Authorization": rush, "Accept": OCI_MANIFEST},
            )
        assert response.status_code == 200, response.text
        stated.append(int(response.headers["RateLimit-Remaining"].split(";")[0]))
    rises = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(stated)) if b > a]
    assert not rises, rises[:5]
    assert stated[-1] <= 5000 - 300


# -- admin commands: --expires, token revoke ------------------------------------------------


def test_expires_needs_a_unit(auth_reg: AuthRegistry) -> None:
    bare = auth_reg.admin(
        "token", "create", "--user", "carol", "--name", "bare", "--expires", "90", ok=False
    )
    assert bare.exit_code == 2
    assert "a number needs a unit" in bare.output and "90d" in bare.output, bare.output
    auth_reg.create_token("carol", "days", "read", "--expires", "90d")
    listed = auth_reg.admin("token", "list", "--user", "carol").stdout
    assert "bare" not in listed and "expires -" not in next(
        line for line in listed.splitlines() if " days " in line
    )
    helped = " ".join(auth_reg.admin("token", "create", "--help").stdout.split())
    assert "Lifetime with a unit" in helped, helped


def test_token_revoke_by_id_needs_no_user(auth_reg: AuthRegistry) -> None:
    secret = auth_reg.create_token("carol", "laptop", "read")
    token_id = secret.split("_")[1]
    with auth_reg.client() as http:
        assert (
            http.get("/v2/", headers={"Authorization": basic("carol", secret)}).status_code == 200
        )
        revoked = auth_reg.admin("token", "revoke", token_id)
        assert revoked.stdout.strip() == f"revoked {token_id} (of carol)"
        assert (
            http.get("/v2/", headers={"Authorization": basic("carol", secret)}).status_code == 401
        )
    again = auth_reg.admin("token", "revoke", token_id, ok=False)
    assert again.exit_code == 2 and "--user" in again.output
    # Another account's token of the same name is untouched; by name still takes --user.
    other = auth_reg.create_token("rita", "laptop", "read")
    assert auth_reg.admin("token", "revoke", "laptop", ok=False).exit_code == 2
    with auth_reg.client() as http:
        assert http.get("/v2/", headers={"Authorization": basic("rita", other)}).status_code == 200
    assert (
        auth_reg.admin("token", "revoke", "laptop", "--user", "rita").stdout.strip()
        == "revoked laptop"
    )


# -- CNCF Distribution ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    require("docker-registry")
    server = Distribution(root=tmp_path_factory.mktemp("distribution")).start()
    yield server
    server.stop()


def test_delete_tag_only_on_distribution_reports_tag_deletion_unsupported(
    distribution: Distribution, tmp_path: Path
) -> None:
    write_oci_image(tmp_path / "src", "v1", seed="distribution-tag")
    ref = f"{distribution.host}/{unique_repo('msg')}:v1"
    ok(dockyard("push", "--quiet", f"oci:{tmp_path / 'src'}:v1", ref, home=tmp_path))
    refused = dockyard("delete", "--tag-only", ref, home=tmp_path)
    assert refused.returncode == 1, (refused.returncode, refused.stderr)
    assert "does not support deleting a tag" in refused.stderr, refused.stderr
    assert "digest" not in refused.stderr.split("(")[0].lower(), refused.stderr
    repo = ref.rsplit(":", 1)[0]
    assert ok(dockyard("tags", repo, home=tmp_path)).stdout.split() == ["v1"]
    # By digest it works, as the message says.
    deleted = ok(dockyard("delete", ref, home=tmp_path))
    assert deleted.stdout.startswith(f"deleted {repo}@sha256:"), deleted.stdout


# -- the server's log and the cache's messages ----------------------------------------------


def test_access_log_records_the_account_and_the_token_name(auth_reg: AuthRegistry) -> None:
    secret = auth_reg.create_token("carol", "logbook", "read")
    marker = unique_repo("carol").replace("carol/", "carol/log-")
    with auth_reg.client() as http:
        by_token = http.get(
            f"/v2/{marker}/tags/list", headers={"Authorization": basic("carol", secret)}
        )
        by_password = http.get(
            f"/v2/{marker}/manifests/v1", headers={"Authorization": basic("carol", CAROL_PASSWORD)}
        )
        anonymous = http.get(f"/v2/{marker}/blobs/sha256:{'0' * 64}")
    assert {by_token.status_code, by_password.status_code} == {404}
    assert anonymous.status_code in (401, 404)
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in auth_reg.server.log().splitlines() if marker in line]
        if len(lines) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    tagged = next(line for line in lines if "/tags/list" in line)
    assert tagged.endswith(" account=carol token=logbook"), tagged
    passworded = next(line for line in lines if "/manifests/v1" in line)
    assert passworded.endswith(" account=carol"), passworded
    nobody = next(line for line in lines if "/blobs/" in line)
    assert "account=" not in nobody, nobody
    assert secret not in auth_reg.server.log() and CAROL_PASSWORD not in auth_reg.server.log()


def test_cache_start_line_lists_upstreams_library_lines_stay_out_and_a_miss_names_its_tag(
    start_registry, tmp_path: Path
) -> None:
    image = make_image(tmp_path, "cache-messages")
    with upstream(tmp_path / "upstream") as up:
        up.push_image("team/app", "v1", image)
        cache = start_cache(start_registry, up.url)
        verbose = start_cache(start_registry, up.url, "--verbose")
        with httpx.Client(base_url=cache.url, timeout=60) as http:
            assert pull(http, "up/team/app", "v1").digest == image.manifest_digest
        with httpx.Client(base_url=verbose.url, timeout=60) as http:
            assert pull(http, "up/team/app", "v1").digest == image.manifest_digest
        up.stop()
        with httpx.Client(base_url=cache.url, timeout=60) as http:
            missing = http.get("/v2/up/team/app/manifests/v2", headers={"Accept": OCI_MANIFEST})
    assert missing.status_code == 503, missing.text
    message = error_of(missing)["message"]
    assert "holds no copy of up/team/app:v2" in message, message
    log = cache.log()
    start = next(line for line in log.splitlines() if "dockyard serving" in line)
    assert f"caching up={up.url}" in start, start
    assert "HTTP Request:" not in log, log
    assert "HTTP Request:" in verbose.log()
    assert "--verbose" in " ".join(ok(dockyard("serve", "--help", home=tmp_path)).stdout.split())


# -- password minimum length ----------------------------------------------------------------


def test_passwords_have_a_minimum_length(auth_reg: AuthRegistry) -> None:
    short = auth_reg.admin("user", "add", "shorty", "--password-stdin", input="7-chars\n", ok=False)
    assert short.exit_code == 2 and "at least 8 characters" in short.output, short.output
    auth_reg.add_user("eighter", "8-chars!")
    passwd = auth_reg.admin(
        "user", "passwd", "eighter", "--password-stdin", input="short\n", ok=False
    )
    assert passwd.exit_code == 2 and "at least 8 characters" in passwd.output
    admin = {"Authorization": basic("admin", ADMIN_PASSWORD)}
    with auth_reg.client() as http:
        made = http.post(
            "/api/v1/users", json={"name": "shorty", "password": "1234567"}, headers=admin
        )
        assert made.status_code == 400 and code_of(made) == "BAD_REQUEST", made.text
        assert "at least 8 characters" in errors_of(made)[0]["message"]
        own = {"Authorization": basic("eighter", "8-chars!")}
        changed = http.put(
            "/api/v1/users/eighter",
            headers=own,
            json={"password": "tiny", "current_password": "8-chars!"},
        )
        assert changed.status_code == 400 and code_of(changed) == "BAD_REQUEST"
        # The rule is checked after who may do it: a wrong current password is still denied.
        wrong = http.put(
            "/api/v1/users/eighter",
            headers=own,
            json={"password": "tiny", "current_password": "not-it-at-all"},
        )
        assert wrong.status_code == 403
        assert http.get("/v2/", headers=own).status_code == 200
    helped = " ".join(auth_reg.admin("serve", "--help").stdout.split())
    assert "--password-min-length" in helped and "DOCKYARD_PASSWORD_MIN_LENGTH" in helped


def test_password_minimum_is_configurable_and_holds_for_the_first_admin(
    start_registry, tmp_path: Path
) -> None:
    strict = start_registry(
        "--auth", "--password-min-length", "12", env={"DOCKYARD_ADMIN_PASSWORD": "twelve-chars"}
    )
    admin = {"Authorization": basic("admin", "twelve-chars")}
    with httpx.Client(base_url=strict.url, timeout=30) as http:
        refused = http.post(
            "/api/v1/users", json={"name": "eleven", "password": "eleven-char"}, headers=admin
        )
        assert refused.status_code == 400 and "at least 12 characters" in refused.text
        made = http.post(
            "/api/v1/users", json={"name": "twelve", "password": "twelve-chars"}, headers=admin
        )
        assert made.status_code == 201, made.text
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--auth",
            "--data-dir",
            str(tmp_path / "weak"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        env={**os.environ, "DOCKYARD_ADMIN_PASSWORD": "admin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 2, started
    assert (
        "DOCKYARD_ADMIN_PASSWORD: the password is too short: at least 8 characters"
        in started.stderr
    ), started.stderr
    assert "Traceback" not in started.stderr
