"""Issue 14, admin commands and the data folder: a mistyped --data-dir (or a command run in
another directory) is refused instead of silently becoming a new, empty registry, and every
admin command says which registry it used."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from tests.auth.helpers import (
    ADMIN_PASSWORD,
    AuthRegistry,
    basic,
    code_of,
    get_manifest,
    push_image,
)
from tests.support.postgres import PostgresCluster
from tests.support.server import RunningRegistry, free_port

runner = CliRunner()

# Every admin command that opens the store, with the arguments it needs to get that far.
ADMIN_COMMANDS: list[list[str]] = [
    ["user", "add", "alice", "--password-stdin"],
    ["user", "list"],
    ["user", "remove", "alice", "--repositories", "delete"],
    ["user", "passwd", "alice", "--password-stdin"],
    ["user", "admin", "alice"],
    ["user", "pull-limit", "alice", "10"],
    ["org", "create", "acme"],
    ["org", "add-member", "acme", "alice"],
    ["org", "remove-member", "acme", "alice"],
    ["org", "list"],
    ["token", "create", "--name", "ci"],
    ["token", "list"],
    ["token", "revoke", "ci"],
    ["repo", "visibility", "acme/web", "public"],
    ["repo", "default-visibility", "acme", "public"],
    ["cache", "stats"],
    ["cache", "prune"],
    ["fsck"],
    ["db", "upgrade"],
    ["migrate", "--to-storage", "s3://bucket"],
]


def run(*args: str, input: str | None = None) -> object:
    return runner.invoke(app, list(args), input=input)


@pytest.fixture(autouse=True)
def _no_environment_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOCKYARD_DATA_DIR", "DOCKYARD_CONFIG", "DOCKYARD_METADATA"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_admin_command_refuses_a_mistyped_data_dir(
    command: list[str], tmp_path: Path
) -> None:
    typo = tmp_path / "dockyrd-data"
    result = run(*command, "--data-dir", str(typo), input="pw-12345678\n")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert f"{typo} holds no registry" in result.stderr
    assert "--data-dir" in result.stderr and "--init" in result.stderr
    assert not typo.exists()  # nothing was created
    assert "created" not in result.stdout


@pytest.mark.parametrize("command", ["add", "passwd"])
def test_the_password_is_not_asked_for_before_the_refusal(command: str, tmp_path: Path) -> None:
    result = run("user", command, "alice", "--password-stdin", "--data-dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "holds no registry" in result.stderr and "password is empty" not in result.stderr


def test_an_empty_existing_folder_is_refused_too(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    result = run("user", "list", "--data-dir", str(folder))
    assert result.exit_code == 2 and "holds no registry" in result.stderr
    assert list(folder.iterdir()) == []


def test_run_in_another_directory_without_data_dir_names_the_default_folder(
    tmp_path: Path,
) -> None:
    """A separate process in a directory with no registry: it names ./dockyard-data, resolved."""
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "user", "add", "bob", "--password-stdin"],
        input="pw-12345678\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**_clean_env()},
    )
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path / 'dockyard-data'} holds no registry" in result.stderr
    assert not (tmp_path / "dockyard-data").exists()


def _clean_env() -> dict[str, str]:
    import os

    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKYARD_DATA_DIR", "DOCKYARD_CONFIG", "DOCKYARD_METADATA")
    }


def test_init_creates_a_registry_and_later_commands_use_it(tmp_path: Path) -> None:
    data = tmp_path / "new"
    created = run(
        "user",
        "add",
        "carol",
        "--password-stdin",
        "--init",
        "--data-dir",
        str(data),
        input="pw-12345678\n",
    )
    assert created.exit_code == 0, created.stderr
    assert created.stdout == "created user carol\n"
    assert created.stderr == f"dockyard: using the registry in {data.resolve()}\n"
    listed = run("user", "list", "--data-dir", str(data))
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == "carol\n"
    assert listed.stderr == f"dockyard: using the registry in {data.resolve()}\n"
    # --init on an existing registry changes nothing but is accepted.
    again = run("user", "list", "--init", "--data-dir", str(data))
    assert again.exit_code == 0 and again.stdout == "carol\n"


def test_db_upgrade_refuses_without_init_and_creates_with_it(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    assert run("db", "upgrade", "--data-dir", str(data)).exit_code == 2
    assert not data.exists()
    result = run("db", "upgrade", "--init", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    assert (data / "metadata.db").is_file()
    assert run("db", "upgrade", "--data-dir", str(data)).exit_code == 0


def test_a_served_registry_is_used_and_named(registry: RunningRegistry) -> None:
    """The folder `serve` created (zero config) is a registry for the admin commands."""
    result = run("org", "list", "--data-dir", str(registry.data_dir))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"dockyard: using the registry in {registry.data_dir.resolve()}\n"


def test_serve_still_creates_a_fresh_folder(start_registry, tmp_path: Path) -> None:
    data = tmp_path / "served"
    start_registry(data_dir=data)
    assert (data / "metadata.db").is_file()
    assert run("user", "list", "--data-dir", str(data)).exit_code == 0


def test_config_check_says_whether_the_folder_holds_a_registry(tmp_path: Path) -> None:
    missing = run("config", "check", "--data-dir", str(tmp_path / "nothing"))
    assert missing.exit_code == 0
    assert f"{tmp_path / 'nothing'} holds no registry yet" in missing.stderr
    assert not (tmp_path / "nothing").exists()


def test_a_postgres_database_without_schema_is_refused(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    config = tmp_path / "pg.yaml"
    config.write_text(
        f"metadata: {url.replace('postgres@', 'postgres:s3cret-pw@')}\n"
        f"data_dir: {tmp_path / 'folder'}\n"
    )
    refused = run("user", "list", "--config", str(config))
    assert refused.exit_code == 2, (refused.stdout, refused.stderr)
    assert "the metadata database" in refused.stderr and "holds no registry" in refused.stderr
    assert "s3cret-pw" not in refused.stderr and "***" in refused.stderr
    assert run("db", "upgrade", "--config", str(config)).exit_code == 2
    created = run("org", "create", "acme", "--init", "--config", str(config))
    assert created.exit_code == 0, created.stderr
    assert "metadata in postgresql://postgres:***@" in created.stderr
    listed = run("org", "list", "--config", str(config))
    assert listed.exit_code == 0 and listed.stdout == "acme: no members\n"


# -- rate limits: flags and YAML, not only environment variables ---------------------------
LONG = 10**9  # a fixed window this long never ends during the test


def _limited_registry(tmp_path: Path, args: tuple[str, ...], env: dict[str, str]) -> AuthRegistry:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=("--auth", *args),
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, **env},
        log_dir=tmp_path,
    ).start()
    reg = AuthRegistry(server)
    with reg.client() as http:
        push_image(http, "acme/app", "v1")
    reg.admin("repo", "visibility", "acme/app", "public")
    reg.add_user("rita", "rita-pw-1234")
    return reg


def _check_limits(reg: AuthRegistry, anonymous: int, authenticated: int, logins: int) -> None:
    with reg.client() as http:
        for left in range(anonymous - 1, -1, -1):
            ok = get_manifest(http, "acme/app", "v1")
            assert ok.status_code == 200, ok.text
            assert ok.headers["RateLimit-Limit"] == f"{anonymous};w={LONG}"
            assert ok.headers["RateLimit-Remaining"] == f"{left};w={LONG}"
        refused = get_manifest(http, "acme/app", "v1")
        assert refused.status_code == 429 and code_of(refused) == "TOOMANYREQUESTS"
        rita = basic("rita", "rita-pw-1234")
        for _ in range(authenticated):
            assert get_manifest(http, "acme/app", "v1", rita).status_code == 200
        assert get_manifest(http, "acme/app", "v1", rita).status_code == 429
        wrong = basic("rita", "not-the-password")
        for _ in range(logins):
            assert http.get("/token", headers={"Authorization": wrong}).status_code == 401
        assert http.get("/token", headers={"Authorization": wrong}).status_code == 429


def test_rate_limits_are_set_by_serve_flags_over_the_environment(tmp_path: Path) -> None:
    env = {"DOCKYARD_ANONYMOUS_PULL_LIMIT": "50", "DOCKYARD_LOGIN_FAILURE_LIMIT": "50"}
    reg = _limited_registry(
        tmp_path,
        (
            "--anonymous-pull-limit",
            "2",
            "--authenticated-pull-limit",
            "3",
            "--pull-limit-window",
            str(LONG),
            "--login-failure-limit",
            "2",
            "--login-failure-window",
            str(LONG),
        ),
        env,
    )
    try:
        _check_limits(reg, anonymous=2, authenticated=3, logins=2)
    finally:
        reg.server.stop()


def test_rate_limits_are_set_in_the_yaml_config(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yaml"
    config.write_text(
        "anonymous_pull_limit: 3\nauthenticated_pull_limit: 2\n"
        f"pull_limit_window_seconds: {LONG}\nlogin_failure_limit: 1\n"
        f"login_failure_window_seconds: {LONG}\n"
    )
    reg = _limited_registry(tmp_path, ("--config", str(config)), {})
    try:
        _check_limits(reg, anonymous=3, authenticated=2, logins=1)
    finally:
        reg.server.stop()


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--pull-limit-window", "pull_limit_window_seconds"),
        ("--login-failure-window", "login_failure_window_seconds"),
        ("--anonymous-pull-limit", "anonymous_pull_limit"),
    ],
)
def test_a_bad_rate_limit_flag_is_refused_before_serving(flag: str, key: str) -> None:
    result = run("serve", flag, "-1", "--data-dir", "/nonexistent/never-created")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert key in result.stderr
    assert not Path("/nonexistent").exists()


# -- the /api/v1 description: OpenAPI document, docs/api.md, real server ----------------------
REPO_ROOT = Path(__file__).resolve().parents[2]
# The order the examples make sense in: each call's example builds on the ones before it.
EXAMPLE_ORDER = [
    "openapi",
    "whoAmI",
    "listTokens",
    "createToken",
    "revokeToken",
    "listUsers",
    "createUser",
    "setPassword",
    "createOrg",
    "setMember",
    "listMembers",
    "removeMember",
    "setVisibility",
    "setDefaultVisibility",
    "updateRepository",
    "getRepository",
    "getUsage",
    "deleteRepository",
    "previewGarbageCollection",
    "collectGarbage",
    "getAudit",
    "addImmutableRule",
    "listImmutableRules",
    "removeImmutableRule",
    "setQuota",
    "getQuota",
    "setRetention",
    "getRetention",
    "removeRetention",
    "setDisabled",
    "setSignaturePolicy",
    "getSignaturePolicies",
    "removeSignaturePolicy",
    "removeUser",
    # Last: no change follows, so the example webhook is never called.
    "addWebhook",
    "listWebhooks",
    "webhookDeliveries",
    "removeWebhook",
]


def _document() -> dict:
    from dockyard.api.routes.openapi import DOCUMENT

    return json.loads(DOCUMENT.read_text())


def _operations(doc: dict) -> dict[str, tuple[str, str, dict]]:
    return {
        op["operationId"]: (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def _validator(doc: dict, schema: dict) -> jsonschema.Draft202012Validator:
    """The schema with the document's components beside it, so that its $refs resolve."""
    return jsonschema.Draft202012Validator({"allOf": [schema], "components": doc["components"]})


def test_docs_api_md_is_rendered_from_the_document() -> None:
    from dockyard.api.openapi_markdown import render

    rendered = render(_document())
    assert (REPO_ROOT / "docs" / "api.md").read_text() == rendered, (
        "docs/api.md drifted from src/dockyard/api/openapi.json: run "
        "`python -m dockyard.api.openapi_markdown > docs/api.md`"
    )


def test_every_api_route_is_described_and_nothing_else() -> None:
    from dockyard.api.routes import table

    served = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower())
        for route in table(False)
        if route.path.startswith("/api/")
        for method in route.methods or ()
        if method != "HEAD"  # Starlette's own, for every GET
    }
    described = {(path, method) for path, method, _ in _operations(_document()).values()}
    assert served == described
    assert set(EXAMPLE_ORDER) == set(_operations(_document()))


def test_every_example_matches_its_schema() -> None:
    doc = _document()
    for op_id, (_, _, op) in _operations(doc).items():
        assert op.get("summary") and op.get("responses"), op_id
        if "requestBody" in op:
            media = op["requestBody"]["content"]["application/json"]
            _validator(doc, media["schema"]).validate(media["example"])
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json")
            if media and "example" in media:
                _validator(doc, media["schema"]).validate(media["example"])
            elif status.startswith("2") and status != "204":
                assert op_id == "openapi", (op_id, status)  # the document itself
        for param in op.get("parameters", []):
            assert param["in"] != "path" or "example" in param, (op_id, param["name"])


def test_the_document_is_served_without_credentials(registry: RunningRegistry) -> None:
    import httpx

    response = httpx.get(f"{registry.url}/api/v1/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == _document()


def test_every_example_request_is_accepted_by_a_real_server(tmp_path: Path) -> None:
    """Each call made exactly as its example says (path parameters, body, first query
    parameter with an example) is answered with its documented success status, and the answer
    matches the documented schema."""
    import httpx

    doc = _document()
    operations = _operations(doc)
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=("--auth",),
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        log_dir=tmp_path,
    ).start()
    new_user = operations["createUser"][2]["requestBody"]["content"]["application/json"]
    user, user_password = new_user["example"]["name"], new_user["example"]["password"]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            # The repository the examples describe, then delete, holds an image.
            push_image(http, "acme/web", "v1", basic("admin", ADMIN_PASSWORD))
            for op_id in EXAMPLE_ORDER:
                path, method, op = operations[op_id]
                params = op.get("parameters", [])
                url = path
                for p in params:
                    if p["in"] == "path":
                        url = url.replace("{" + p["name"] + "}", p["example"])
                query = {
                    p["name"]: p["example"] for p in params if p["in"] == "query" and "example" in p
                }
                # A self password change, as its example (with current_password) describes.
                who = (
                    basic(user, user_password)
                    if op_id == "setPassword"
                    else basic("admin", ADMIN_PASSWORD)
                )
                headers = {} if op.get("security") == [] else {"Authorization": who}
                kwargs: dict = {"params": query, "headers": headers}
                if "requestBody" in op:
                    kwargs["json"] = op["requestBody"]["content"]["application/json"]["example"]
                response = http.request(method.upper(), url, **kwargs)
                expected = next(s for s in op["responses"] if s.startswith("2"))
                assert str(response.status_code) == expected, (op_id, response.text)
                media = op["responses"][expected].get("content", {}).get("application/json")
                if media:
                    _validator(doc, media["schema"]).validate(response.json())
    finally:
        server.stop()


def test_the_documented_refusals_are_what_a_real_server_answers(tmp_path: Path) -> None:
    """Without credentials every protected call is answered its documented 401, and a body that
    is not JSON its documented 415, with the documented error code and message."""
    import httpx

    doc = _document()
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=("--auth",),
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        log_dir=tmp_path,
    ).start()
    admin = {"Authorization": basic("admin", ADMIN_PASSWORD)}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for op_id, (path, method, op) in _operations(doc).items():
                url = path
                for p in op.get("parameters", []):
                    if p["in"] == "path":
                        url = url.replace("{" + p["name"] + "}", p["example"])
                checks = []
                if op.get("security") != []:
                    checks.append(("401", {}, None))
                if "requestBody" in op:
                    checks.append(("415", {**admin, "Content-Type": "text/plain"}, b"{}"))
                for status, headers, content in checks:
                    response = http.request(method.upper(), url, headers=headers, content=content)
                    assert str(response.status_code) == status, (op_id, response.text)
                    documented = op["responses"][status]["content"]["application/json"]
                    assert response.json() == documented["example"], op_id
    finally:
        server.stop()


def test_concurrent_init_makes_one_registry_with_everything_in_it(tmp_path: Path) -> None:
    data = tmp_path / "together"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockyard",
                "user",
                "add",
                f"u{i}",
                "--password-stdin",
                "--init",
                "--data-dir",
                str(data),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_env(),
        )
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate("pw-12345678\n", timeout=60)
        assert proc.returncode == 0, err
    assert run("user", "list", "--data-dir", str(data)).stdout == "u0\nu1\nu2\nu3\n"


def test_init_on_a_file_says_why_in_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    result = run("user", "list", "--init", "--data-dir", str(a_file))
    assert result.exit_code == 1, (result.stdout, result.exception)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(a_file) in result.stderr
