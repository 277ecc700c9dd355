"""PostgreSQL counts a namespace's content without a per-digest link count.

Revision 0009's trigger kept, per namespace and digest, how many links and manifests held it:
every push of a blob into a namespace that already held it updated that one row, so a fleet
making new repositories from one image (their blobs mounted, their manifests put) wrote the
same rows in every transaction, and on PostgreSQL's serializable transactions some pushes
used up their attempts and answered 503. Now a row stands while anything of the namespace
holds the digest: a push finds it and writes nothing; the removal of a link or manifest looks
for another holder in the namespace and drops the row (and its bytes from the usage) only
when none is left. SQLite, one writer at a time, keeps its triggers; `links` is no longer
kept on PostgreSQL (1 on rows made from now on).

Revision ID: 0016
Revises: 0015
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

POSTGRES_FUNCTION = """CREATE OR REPLACE FUNCTION dockyard_count_namespace_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  ns text;
  sz bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT split_part(name, '/', 1) INTO ns FROM repositories WHERE id = NEW.repository_id;
    -- Already counted in the namespace: a read, no write every such push would share.
    PERFORM 1 FROM namespace_blobs WHERE namespace = ns AND digest = NEW.digest;
    IF FOUND THEN
      RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'manifests' THEN
      sz := NEW.size;
    ELSE
      SELECT size INTO sz FROM blobs WHERE digest = NEW.digest;
    END IF;
    INSERT INTO namespace_blobs (namespace, digest, size, links)
      VALUES (ns, NEW.digest, COALESCE(sz, 0), 1)
      ON CONFLICT (namespace, digest) DO NOTHING
      RETURNING size INTO sz;
    IF FOUND THEN
      INSERT INTO namespace_usage (namespace, shard, bytes) VALUES (ns, right(NEW.digest, 1), sz)
        ON CONFLICT (namespace, shard) DO UPDATE SET bytes = namespace_usage.bytes + EXCLUDED.bytes;
    END IF;
    RETURN NEW;
  END IF;
  SELECT split_part(name, '/', 1) INTO ns FROM repositories WHERE id = OLD.repository_id;
  -- Another link or manifest of the namespace still holds the digest: it stays counted.
  -- (Row triggers run after their statement: rows it deletes together are gone here.)
  IF EXISTS (SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = OLD.digest AND split_part(r.name, '/', 1) = ns)
     OR EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id
                WHERE m.digest = OLD.digest AND split_part(r.name, '/', 1) = ns) THEN
    RETURN OLD;
  END IF;
  DELETE FROM namespace_blobs WHERE namespace = ns AND digest = OLD.digest
    RETURNING size INTO sz;
  IF FOUND THEN
    UPDATE namespace_usage SET bytes = bytes - sz
      WHERE namespace = ns AND shard = right(OLD.digest, 1);
  END IF;
  RETURN OLD;
END
$$"""

# The counts revision 0009's function keeps, made again from the rows (for a downgrade).
RECOUNT = """UPDATE namespace_blobs nb SET links = held.n FROM (
  SELECT ns, digest, COUNT(*) AS n FROM (
    SELECT split_part(r.name, '/', 1) AS ns, rb.digest AS digest
      FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
    UNION ALL
    SELECT split_part(r.name, '/', 1), m.digest
      FROM manifests m JOIN repositories r ON r.id = m.repository_id
  ) AS content GROUP BY ns, digest
) AS held WHERE nb.namespace = held.ns AND nb.digest = held.digest"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Alembic loads these files by path, not as a package: 0009's function, the same way.
        spec = importlib.util.spec_from_file_location(
            "dockyard_revision_0009", Path(__file__).with_name("0009_policies.py")
        )
        assert spec is not None and spec.loader is not None
        earlier = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(earlier)
        op.execute(RECOUNT)
        op.execute(
            earlier.POSTGRES_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
        )
