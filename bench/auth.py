"""`python -m bench.auth`: manifest GET requests/s with accounts and Bearer tokens on, against
the same Dockyard without them, in one run, rounds alternating (target: >= 0.9).

The authenticated server counts every manifest GET against the pull limit (set high enough
never to refuse, so the counting is measured and not skipped); wrk sends a pull token of an
ordinary user (admins are not counted), got from `/token` with the user's password as docker
does after `docker login`, for a public repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.load import run_wrk
from bench.proxy import MANIFEST, make_image, push
from bench.servers import Dockyard

PASSWORD = "bench-admin-password"
USER, USER_PASSWORD = "puller", "bench-user-password"


def token(url: str, repo: str, actions: str, user: tuple[str, str] = ("admin", PASSWORD)) -> str:
    response = httpx.get(
        f"{url}/token",
        params={"service": "dockyard", "scope": f"repository:{repo}:{actions}"},
        auth=user,
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    return body.get("token") or body["access_token"]


def push_with_token(url: str, repo: str, manifest: bytes, blobs: list[bytes]) -> None:
    """Push as the admin, then make the repository public and create the pulling user."""
    bearer = token(url, repo, "pull,push")
    push(url, repo, manifest, blobs, headers={"Authorization": f"Bearer {bearer}"})
    admin = ("admin", PASSWORD)
    httpx.post(
        f"{url}/api/v1/users",
        json={"name": USER, "password": USER_PASSWORD},
        auth=admin,
        timeout=30,
    ).raise_for_status()
    httpx.put(
        f"{url}/api/v1/repositories/{repo}/visibility",
        json={"visibility": "public"},
        auth=admin,
        timeout=30,
    ).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "auth.json"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-auth-"))
    manifest, blobs = make_image(1, 1)
    open_server = Dockyard("open", "Dockyard, no auth", work / "open")
    auth_server = Dockyard(
        "auth",
        "Dockyard, Bearer tokens",
        work / "auth",
        extra_args=("--auth",),
        extra_env={
            "DOCKYARD_ADMIN_PASSWORD": PASSWORD,
            "DOCKYARD_TOKEN_TTL_SECONDS": "3600",
            "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "1000000000",
        },
    )
    results: dict[str, list[float]] = {"no auth": [], "Bearer tokens": []}
    non_2xx = 0
    try:
        open_server.start()
        auth_server.start()
        push(open_server.url, "bench/app", manifest, blobs)
        push_with_token(auth_server.url, "bench/app", manifest, blobs)
        headers = {"Accept": MANIFEST}
        pull_token = token(auth_server.url, "bench/app", "pull", (USER, USER_PASSWORD))
        bearer = {**headers, "Authorization": f"Bearer {pull_token}"}
        for _ in range(args.rounds):
            for name, server, sent in (
                ("no auth", open_server, headers),
                ("Bearer tokens", auth_server, bearer),
            ):
                result = run_wrk(
                    f"{server.url}/v2/bench/app/manifests/v1",
                    headers=sent,
                    connections=args.connections,
                    seconds=args.seconds,
                )
                non_2xx += result.non_2xx
                results[name].append(result.requests_per_s)
    finally:
        open_server.stop()
        auth_server.stop()
    if non_2xx:
        raise SystemExit(f"bench.auth: {non_2xx} answers were not 2xx; figures not valid")
    medians = {name: statistics.median(values) for name, values in results.items()}
    ratio = medians["Bearer tokens"] / medians["no auth"]
    print(f"manifest GET at {args.connections} connections, {args.rounds} rounds, medians")
    for name, rps in medians.items():
        every = ", ".join(f"{v:.0f}" for v in results[name])
        print(f"  {name:<14} {rps:8.0f} req/s   (all: {every})")
    print(
        f"Bearer tokens / no auth: {ratio:.2f} (target >= 0.90: "
        f"{'met' if ratio >= 0.9 else 'NOT met'})"
    )
    report: dict[str, Any] = {
        "rounds": results,
        "medians": medians,
        "ratio": ratio,
        "nproc": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
