"""`python -m bench.token`: tokens per second from `/token`, with an access token and with a
password the server checked in the last minute (targets: >= 2,000/s and >= 1,000/s).

docker, podman and containerd ask `/token` for every repository an operation touches, with the
credentials `docker login` stored: an access token (`dyt_...`) or the account's password. The
first request with a password pays bcrypt; wrk then repeats the same request, as a CI runner
pulling one image after another does. Distribution has no token server of its own: the figures
are absolute, printed beside the targets, with the server's CPU time per token (all its
processes), which the machine's other load moves far less than the rate.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.load import run_wrk
from bench.servers import Dockyard, cpu_seconds, tree_pids

ADMIN_PASSWORD = "bench-admin-password"
USER, USER_PASSWORD = "tokener", "bench-user-password"
TARGETS = {"access token": 2000.0, "password": 1000.0}


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def prepare(url: str) -> dict[str, str]:
    """An ordinary user and one of its access tokens; the Authorization header of each form."""
    httpx.post(
        f"{url}/api/v1/users",
        json={"name": USER, "password": USER_PASSWORD},
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    ).raise_for_status()
    created = httpx.post(
        f"{url}/api/v1/tokens",
        json={"name": "bench", "scope": "write"},
        auth=(USER, USER_PASSWORD),
        timeout=30,
    )
    created.raise_for_status()
    return {
        "access token": _basic(USER, created.json()["token"]),
        "password": _basic(USER, USER_PASSWORD),
    }


def token_url(url: str) -> str:
    return f"{url}/token?service=dockyard&scope=repository:{USER}/app:pull,push"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.token", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "token.json"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-token-"))
    server = Dockyard(
        "auth",
        "Dockyard, accounts on",
        work / "auth",
        extra_args=("--auth",),
        extra_env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    results: dict[str, list[float]] = {form: [] for form in TARGETS}
    cpu_us: dict[str, list[float]] = {form: [] for form in TARGETS}
    non_2xx = 0
    try:
        server.start()
        headers = prepare(server.url)
        url = token_url(server.url)
        for header in headers.values():  # each form checked once, then seen before
            answer = httpx.get(url, headers={"Authorization": header}, timeout=30)
            answer.raise_for_status()
            assert answer.json()["token"], answer.text
        for _ in range(args.rounds):
            for form, header in headers.items():
                assert server.proc is not None
                pids = tree_pids(server.proc.pid)
                used = cpu_seconds(pids)
                result = run_wrk(
                    url,
                    headers={"Authorization": header},
                    connections=args.connections,
                    seconds=args.seconds,
                )
                used = cpu_seconds(pids) - used
                non_2xx += result.non_2xx
                results[form].append(result.requests_per_s)
                cpu_us[form].append(1e6 * used / max(1, result.requests))
    finally:
        server.stop()
    if non_2xx:
        raise SystemExit(f"bench.token: {non_2xx} answers were not 2xx; figures not valid")
    medians = {form: statistics.median(values) for form, values in results.items()}
    cpu_medians = {form: statistics.median(values) for form, values in cpu_us.items()}
    print(f"/token at {args.connections} connections, {args.rounds} rounds, medians")
    for form, rate in medians.items():
        every = ", ".join(f"{v:.0f}" for v in results[form])
        verdict = "met" if rate >= TARGETS[form] else "NOT met"
        print(
            f"  {form:<13} {rate:8.0f} tokens/s  (target >= {TARGETS[form]:.0f}: {verdict}; "
            f"all: {every}); server CPU {cpu_medians[form]:.0f} us a token"
        )
    report: dict[str, Any] = {
        "rounds": results,
        "medians": medians,
        "server_cpu_us_per_token": cpu_us,
        "targets": TARGETS,
        "nproc": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
