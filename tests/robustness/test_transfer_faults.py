"""Big transfers reuse the worker's memory instead of faulting in fresh pages for every piece.

granian copies each body piece, received or sent, into a buffer of its jemalloc. When freed
pages went back to the system at once, each piece faulted its pages in (and the kernel zeroed
them) again: about one page fault per 4 KiB moved, a quarter of a push's CPU and half a pull's.
Counted here from the worker's own fault counter, not timed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator

import httpx

from tests.support.push import unique_repo

MIB = 1024 * 1024
BODY_MIB = 32
PAGES_PER_MIB = MIB // 4096
# Fresh pages for every piece was one fault per page moved (256 a MiB, measured 260-280).
# Reused, a transfer faults a few pages a MiB (2-9 pulled, 11-37 pushed, measured).
PUSH_FAULTS_PER_MIB = PAGES_PER_MIB // 2
PULL_FAULTS_PER_MIB = PAGES_PER_MIB // 4


def _worker(pid: int) -> int:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=True
    ).stdout
    (worker,) = (int(x) for x in out.split())
    return worker


def _minor_faults(pid: int) -> int:
    """Minor page faults of the whole process, every thread's together (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[7])  # the 10th field: minflt


def _push(client: httpx.Client, repo: str, block: bytes) -> str:
    head = os.urandom(32)
    digest = hashlib.sha256(head)
    for _ in range(BODY_MIB):
        digest.update(block)

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(BODY_MIB):
            yield block

    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    name = "sha256:" + digest.hexdigest()
    done = client.put(location, params={"digest": name}, content=body())
    assert done.status_code == 201, done.text
    return name


def _pull(client: httpx.Client, repo: str, digest: str) -> int:
    received = 0
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as answer:
        assert answer.status_code == 200
        for piece in answer.iter_raw(MIB):
            received += len(piece)
    return received


def test_big_pushes_and_pulls_fault_in_few_pages(start_registry) -> None:
    server = start_registry("--workers", "1")
    worker = _worker(server.proc.pid)
    repo = unique_repo()
    block = os.urandom(MIB)
    with httpx.Client(base_url=server.url, timeout=300) as client:
        # Whatever a first transfer loads or grows once (modules, threads, heaps).
        first = _push(client, repo, block)
        _pull(client, repo, first)

        before = _minor_faults(worker)
        digest = _push(client, repo, block)
        pushed = (_minor_faults(worker) - before) / BODY_MIB

        before = _minor_faults(worker)
        for _ in range(2):
            assert _pull(client, repo, digest) == BODY_MIB * MIB + 32
        pulled = (_minor_faults(worker) - before) / (2 * BODY_MIB)

    assert pushed <= PUSH_FAULTS_PER_MIB, f"{pushed:.0f} page faults per MiB pushed"
    assert pulled <= PULL_FAULTS_PER_MIB, f"{pulled:.0f} page faults per MiB pulled"
