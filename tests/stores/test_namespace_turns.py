"""First pushes into one namespace at once on PostgreSQL: none of their transactions is rolled
back for another's.

A fleet's first pushes make new repositories next to each other: their names share a leaf page
of the repositories' name index, their ids one of the primary key's, their manifests and tag
history pages of theirs. PostgreSQL's serializable transactions lock what they read by index
page, not by row, so each push read a page the next one wrote (a foreign key's check, a
trigger's lookup) and concurrent pushes failed serialization in turn; under load one of them
used up its attempts and answered 503. The writes of a push now take the namespace's turn, so
those of one namespace never overlap (other namespaces' writes still run beside them, and may
still conflict with them now and then: those are run again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.metadata.base import ManifestRecord, Reference
from dockyard.metadata.postgres_runner import TURN_CLASS, postgres_url, turn_key
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.registry import migrate
from tests.support.postgres import PostgresCluster

PUSHES = 32
MANIFEST = "application/vnd.oci.image.manifest.v1+json"

# A turn's advisory lock (two-key form: objsubid 2) that some session waits for, or holds.
_TURN_LOCK = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
    " AND classid::bigint = :class AND objid::bigint = (:key)::bigint & 4294967295"
)
WAITING = sa.text(_TURN_LOCK + " AND NOT granted)")
HELD = sa.text(_TURN_LOCK + " AND granted)")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def first_push(store: SQLMetadataStore, repository: str, blobs: list[str]) -> None:
    """What a push of a new repository writes: a link per mounted blob, then the manifest."""
    for blob in blobs:
        await store.link_blob(repository, blob, 100)
    body = json.dumps({"repository": repository, "layers": blobs}).encode()
    record = ManifestRecord(digest=digest_of(body), media_type=MANIFEST, size=len(body))
    await store.put_manifest(
        repository, record, [Reference(target=b, kind="blob") for b in blobs], ["v1"]
    )


def test_first_pushes_into_one_namespace_are_never_rolled_back(
    postgres: PostgresCluster, run
) -> None:
    """Two stores on one database, as two replicas (or worker processes) have."""
    url = postgres.create_database()
    replicas = [SQLMetadataStore.open_postgres(url) for _ in range(2)]
    try:
        run(migrate(replicas[0]))
        shared = [digest_of(b"layer"), digest_of(b"config")]
        run(first_push(replicas[0], "fleet/base", shared))
        pushes = [first_push(replicas[i % 2], f"fleet/app-{i:02d}", shared) for i in range(PUSHES)]

        async def all_at_once() -> None:
            await asyncio.gather(*pushes)

        run(all_at_once())
        assert [store.runner.conflicts for store in replicas] == [0, 0]
        for i in range(PUSHES):
            tagged = run(replicas[0].resolve_tag(f"fleet/app-{i:02d}", "v1"))
            assert tagged is not None and tagged.media_type == MANIFEST
    finally:
        for store in replicas:
            run(store.close())


def test_a_write_cancelled_while_waiting_for_its_turn_leaves_the_turn_free(
    postgres: PostgresCluster, run
) -> None:
    """A request that goes away while its write waits (a client hanging up) must not leave the
    namespace's turn taken by a connection back in the pool: every later push would wait."""
    url = postgres.create_database()
    store = SQLMetadataStore.open_postgres(url)
    holder = create_async_engine(postgres_url(url))
    params = {"class": TURN_CLASS, "key": turn_key("fleet")}

    async def scenario() -> None:
        async with holder.connect() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:class, :key)"), params)
            await conn.commit()
            waiting = asyncio.ensure_future(store.link_blob("fleet/a", digest_of(b"a"), 1))
            while not await conn.scalar(WAITING, params):
                assert not waiting.done(), waiting
                await asyncio.sleep(0.05)
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:class, :key)"), params)
            await conn.commit()
        # Several writes of the turn after it, on the store's pooled connections.
        await asyncio.gather(
            *(store.link_blob(f"fleet/b{i}", digest_of(b"b"), 1) for i in range(12))
        )
        async with holder.connect() as conn:
            assert not await conn.scalar(HELD, params)

    try:
        run(migrate(store))
        run(scenario())
        assert run(store.linked_blob_size("fleet/b11", digest_of(b"b"))) == 1
    finally:
        run(store.close())
        run(holder.dispose())
