"""What operators install: docs/dockyard.example.yaml (every setting, loaded by the real
settings loader), docs/dockyard.service (a unit systemd accepts, whose stop timeout outlasts
the server's shutdown deadline) and the Containerfile (its settings valid, its command the
package's own).

The image itself is built, pushed, pulled and run by tests/packaging/test_container_image.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from dockyard.config import Settings, check_security, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "dockyard.example.yaml"
UNIT = ROOT / "docs" / "dockyard.service"
CONTAINERFILE = ROOT / "Containerfile"
COMMENTED = re.compile(r"^# ([a-z0-9_]+):(.*)$")


def commented_settings() -> dict[str, str]:
    """`# key: value` lines naming a setting: the key and the value as written."""
    found = {}
    for line in EXAMPLE.read_text().splitlines():
        match = COMMENTED.match(line)
        if match and match.group(1) in Settings.model_fields:
            found[match.group(1)] = match.group(2).strip()
    return found


def test_the_example_configuration_loads_with_the_real_loader(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE, environ={})
    check_security(settings)
    assert settings.listen == "0.0.0.0:5000"
    assert settings.data_dir == Path("/var/lib/dockyard")
    assert settings.auth_enabled  # a network address: accounts on


def test_the_example_names_every_setting_with_its_default() -> None:
    active = yaml.safe_load(EXAMPLE.read_text())
    commented = commented_settings()
    assert not set(active) & set(commented), "a setting both set and commented out"
    missing = set(Settings.model_fields) - set(active) - set(commented)
    assert not missing, f"settings the example does not mention: {sorted(missing)}"
    defaults = Settings().model_dump(mode="json")
    for key, written in commented.items():
        value = yaml.safe_load(written) if written else None
        if defaults[key] in (None, [], {}):
            continue  # an example of what to write where there is no default
        assert value == defaults[key], (
            f"{key}: the example says {value!r}, the default is {defaults[key]!r}"
        )


def test_every_commented_example_is_a_valid_value(tmp_path: Path) -> None:
    """Uncommented all at once (the proxies block included), the file still validates."""
    text = EXAMPLE.read_text()
    uncommented = []
    in_proxies = False
    for line in text.splitlines():
        match = COMMENTED.match(line)
        if match and match.group(1) in Settings.model_fields:
            in_proxies = match.group(1) == "proxies"
            uncommented.append(line[2:])
        elif in_proxies and line.startswith("#   "):
            uncommented.append(line[2:])
        else:
            in_proxies = False
            uncommented.append(line)
    config = tmp_path / "all.yaml"
    config.write_text("\n".join(uncommented) + "\n")
    settings = load_settings(config, environ={})
    assert settings.storage == "s3://registry-blobs/dockyard"
    assert [p.name for p in settings.proxies] == ["docker.io"]
    assert set(yaml.safe_load(config.read_text())) == set(Settings.model_fields)


def unit_values() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_systemd_unit_verifies_and_outlasts_the_shutdown_deadline(tmp_path: Path) -> None:
    values = unit_values()
    deadline = load_settings(EXAMPLE, environ={}).shutdown_timeout_seconds
    assert int(values["TimeoutStopSec"][0]) > deadline
    assert values["KillSignal"] == ["SIGTERM"]
    assert values["KillMode"] == ["mixed"]  # SIGTERM to the server, which stops its workers
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for hardening in ("DynamicUser", "NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert values[hardening] == ["yes"], hardening
    assert values["ProtectSystem"] == ["strict"]
    assert values["StateDirectory"] == ["dockyard"]
    assert values["Environment"] == ["DOCKYARD_DATA_DIR=/var/lib/dockyard"]
    # systemd itself reads it: every key known, every value parsed. The program path is the
    # one of this test's environment, as systemd checks that it exists.
    installed = Path(sys.executable).parent / "dockyard"
    assert installed.is_file()
    unit = tmp_path / "dockyard.service"
    unit.write_text(UNIT.read_text().replace("/opt/dockyard/bin/dockyard", str(installed)))
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) is needed to check the unit"
    checked = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout + checked.stderr == ""
    # The unit's command line is accepted by this version's `serve`.
    config = tmp_path / "dockyard.yaml"
    shutil.copyfile(EXAMPLE, config)
    check = values["ExecStartPre"][0].replace("/opt/dockyard/bin/dockyard", str(installed))
    check = check.replace("/etc/dockyard/dockyard.yaml", str(config))
    env = {**os.environ, "DOCKYARD_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(check.split(), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "configuration is valid" in done.stdout


def instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    joined: list[tuple[str, str]] = []
    pending = ""
    for line in CONTAINERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            joined.append((word, " ".join(rest.split())))
            pending = ""
    assert not pending, "a continuation line ends the file"
    return joined


def test_the_containerfile_runs_this_package_with_valid_settings(tmp_path: Path) -> None:
    steps = instructions()
    known = {"ARG", "FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "VOLUME", "EXPOSE"}
    assert {word for word, _ in steps} <= known | {"STOPSIGNAL", "HEALTHCHECK", "ENTRYPOINT", "CMD"}
    # The base is a build argument whose default is an image with Python (Docker Hub's).
    assert steps[0] == ("ARG", "BASE=docker.io/library/python:3.11-slim-bookworm")
    froms = [rest for word, rest in steps if word == "FROM"]
    # the base with Python and the user, the build from wheels, the run without the wheels
    assert froms == ["${BASE} AS python", "python AS build", "python"]
    copies = [rest for word, rest in steps if word == "COPY" and not rest.startswith("--from")]
    assert copies == ["dist/ /wheels/"]  # the wheels alone: not the checkout, not its venv
    assert "--no-index" in next(rest for word, rest in steps if word == "RUN" and "pip" in rest)
    ignored = (ROOT / ".containerignore").read_text().split("\n")
    assert "*" in ignored and "!dist" in ignored
    assert "/healthz" in dict(steps)["HEALTHCHECK"]
    # The command is the package's own script, in exec form, run as an unprivileged user.
    command = [
        *json.loads(dict(steps)["ENTRYPOINT"]),
        *json.loads(dict(steps)["CMD"]),
    ]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command == ["dockyard", "serve"] and "dockyard" in scripts
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM"
    user = dict(steps)["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    # The image's settings (its DOCKYARD_* variables) validate, with the data folder moved
    # here; what the image would serve is what this checkout serves.
    env_line = next(rest for word, rest in steps if word == "ENV" and "DOCKYARD_" in rest)
    image_env = dict(item.split("=", 1) for item in env_line.split() if item.startswith("DOCK"))
    assert image_env["DOCKYARD_DATA_DIR"] == dict(steps)["VOLUME"].strip('[]"')
    image_env["DOCKYARD_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "config", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, **image_env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "dockyard", "config", "show"],
        capture_output=True,
        text=True,
        env={**os.environ, **image_env},
        timeout=120,
    )
    assert "listen: 0.0.0.0:5000" in shown.stdout
